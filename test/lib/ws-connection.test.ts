// The shared WebSocket frame: every length encoding decodes back to the text with ws's own parser.

import t from 'tap'
import type { Writable } from 'node:stream'
import * as ws from 'ws'
import { textFrame } from '../../lib/ws-connection.ts'

// ws's frame parser (exported at runtime, absent from @types/ws).
const { Receiver } = ws as unknown as { Receiver: new (options: { isServer: boolean }) => Writable }

async function decode (frame: Buffer): Promise<string> {
  const receiver = new Receiver({ isServer: false })
  return await new Promise((resolve, reject) => {
    receiver.on('message', (data: Buffer, isBinary: boolean) => { if (isBinary) reject(new Error('binary')); else resolve(data.toString()) })
    receiver.on('error', reject)
    receiver.write(frame)
  })
}

t.test('textFrame is a FIN text frame, unmasked, for every payload length encoding', async (t) => {
  for (const length of [0, 1, 125, 126, 65_535, 65_536, 200_000]) {
    const text = 'é'.repeat(Math.floor(length / 2)) + 'x'.repeat(length % 2)
    const frame = textFrame(text)
    t.equal(frame[0], 0x81, `${length} bytes: FIN + text opcode`)
    t.equal(frame[1]! & 0x80, 0, `${length} bytes: unmasked (server to client)`)
    t.equal(await decode(frame), text, `${length} bytes: ws decodes it back`)
  }
})
