// A TCP relay between the app and a server (Redis) that the test can hold: while held, what the app
// sends is kept back in order — the server sees nothing, so the app's commands wait, as with a slow
// Redis — until the test releases it. The test can also wait for the app to have sent something.

import { createServer, connect, type Socket } from 'node:net'
import { once } from 'node:events'

interface Teardown { teardown: (fn: () => unknown) => void }

export interface TcpRelay {
  /** `redis://127.0.0.1:<relay port>` (the target's scheme, the relay's address). */
  url: string
  hold: () => void
  /** Sends what was held, in order, and relays freely again. */
  release: () => void
  /** Resolves once the app has sent bytes matching `pattern` (held or not); rejects after `timeoutMs`. */
  sent: (pattern: RegExp, timeoutMs?: number) => Promise<void>
}

/** Relays to the server at `targetUrl` (host and port); closed when the test ends. */
export async function startTcpRelay (t: Teardown, targetUrl: string): Promise<TcpRelay> {
  const target = new URL(targetUrl)
  const sockets = new Set<Socket>()
  const held: Array<[Socket, Buffer]> = []
  const watchers = new Set<() => void>()
  let holding = false
  let seen = ''

  const server = createServer((client) => {
    const upstream = connect(Number(target.port), target.hostname)
    for (const socket of [client, upstream]) {
      sockets.add(socket)
      socket.on('error', () => {})
      socket.on('close', () => { sockets.delete(socket); client.destroy(); upstream.destroy() })
    }
    client.on('data', (chunk: Buffer) => {
      seen += chunk.toString('latin1')
      for (const wake of [...watchers]) wake()
      if (holding) held.push([upstream, chunk])
      else upstream.write(chunk)
    })
    upstream.on('data', (chunk: Buffer) => { client.write(chunk) })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    server.close()
    await once(server, 'close')
  })
  const { port } = server.address() as { port: number }

  return {
    url: `${target.protocol}//127.0.0.1:${port}`,
    hold: () => { holding = true },
    release: () => {
      holding = false
      for (const [upstream, chunk] of held.splice(0)) upstream.write(chunk)
    },
    sent: async (pattern, timeoutMs = 3000) => {
      if (pattern.test(seen)) return
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { watchers.delete(check); reject(new Error(`the app sent nothing matching ${pattern} within ${timeoutMs} ms`)) }, timeoutMs)
        function check (): void {
          if (!pattern.test(seen)) return
          clearTimeout(timer)
          watchers.delete(check)
          resolve()
        }
        watchers.add(check)
      })
    }
  }
}
