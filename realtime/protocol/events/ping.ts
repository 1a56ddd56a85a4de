// ping → ack {time}: an application-level round trip for clients that cannot send protocol pings
// (browsers), e.g. to measure latency or keep an idle proxy path open.

import { Type } from '@sinclair/typebox'
import { defineEvent } from '../event-router.ts'

export default defineEvent({
  event: 'ping',
  data: Type.Optional(Type.Unknown()),
  handle: () => ({ time: Date.now() })
})
