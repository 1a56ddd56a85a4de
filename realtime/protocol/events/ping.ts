// ping → ack {time}: an application-level round trip for clients that cannot send protocol pings
// (browsers), e.g. to measure latency or keep an idle proxy path open.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'

export default defineEvent({
  event: 'ping',
  summary: 'An application-level round trip (latency, keeping an idle proxy path open)',
  data: Type.Optional(Type.Unknown()),
  ack: Type.Object({ time: Type.Integer({ description: 'the server\'s clock, milliseconds since the epoch' }) }),
  handle: () => ({ time: Date.now() })
})
