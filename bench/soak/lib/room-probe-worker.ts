// The worker-thread host of a RoomProbe (bench/soak/lib/room-probe.ts, `openRoomProbeInWorker`):
// opens the probe from `workerData`, says ready (or why not), then answers one command at a time.

import { parentPort, workerData } from 'node:worker_threads'
import { RoomProbe, type ProbeCommand, type RoomProbeOptions } from './room-probe.ts'

const port = parentPort!
try {
  const probe = await RoomProbe.open(workerData as RoomProbeOptions)
  port.on('message', ({ id, command, args }: { id: number, command: ProbeCommand, args: number[] }) => {
    switch (command) {
      case 'start': probe.start(); break
      case 'stop': probe.stop(); break
      case 'window': port.postMessage({ id, result: probe.window(args[0]!, args[1]!) }); return
      case 'close': probe.close(); break
    }
    port.postMessage({ id })
  })
  port.postMessage({})
} catch (err) {
  port.postMessage({ error: (err as Error).message })
}
