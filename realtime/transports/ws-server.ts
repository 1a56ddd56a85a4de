// @fastify/websocket as Keel configures it: the frame size limit, no compression, no client tracking
// (the WebSocket transport, ws-route.ts, keeps its own sessions and closes them with 1001 on shutdown).
// app.ts registers it, then the transport whose route it upgrades.

import fastifyWebsocket, { type WebsocketPluginOptions } from '@fastify/websocket'
import type { Config } from '../../core/config.ts'

export function webSocketServerOptions (ws: Config['ws']): WebsocketPluginOptions {
  return {
    options: {
      maxPayload: ws.maxPayloadBytes,
      // Compression would cost ~300 KiB per connection in zlib state and defeat the shared frames.
      perMessageDeflate: false,
      // The transport tracks its connections; ws's own Set would be a second reference to each.
      clientTracking: false,
      // ws ≥ 8.18 option (not in @types/ws yet): how long a close handshake may take before ws destroys the socket.
      ...{ closeTimeout: ws.closeGraceMs }
    },
    // Only reached when accepting a socket throws; ws protocol errors go to the transport's listener.
    errorHandler (err, socket, request) {
      request.log.error({ err }, 'WebSocket connection failed')
      socket.terminate()
    },
    // Upgrades arriving from now on are refused (503); the transport closes the open sessions itself.
    preClose (done) {
      this.websocketServer.close()
      done()
    }
  }
}

export default fastifyWebsocket
