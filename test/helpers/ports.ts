// Free loopback ports for processes a test starts and must address before they run (a server it
// restarts on the same port, a proxy whose configuration names its backends).

import { createServer } from 'node:net'
import { once } from 'node:events'

/** A TCP port on 127.0.0.1 that was free a moment ago (the OS may hand it out again; bind it soon). */
export async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  server.close()
  await once(server, 'close')
  if (typeof address !== 'object' || address === null) throw new Error('no port')
  return address.port
}
