// What every real-time session shares whatever its transport (a WebSocket connection, an SSE stream):
// its membership in the hub (joins, and leaving every room once it has ended) and the end of its
// access token's life. Each transport says how it delivers a packet and how it ends on expiry.

import type { AuthUser } from '../../auth/access-token.ts'
import type { HubConnection, HubPacket, JoinOptions, JoinResult, RoomHub, SlowConsumerPolicy } from '../hub/room-hub.ts'

// setTimeout's ceiling (~24.8 days); a longer-lived token is re-armed when this fires.
const MAX_TIMER_MS = 2 ** 31 - 1

export abstract class HubSession implements HubConnection {
  readonly id: string
  readonly user: AuthUser
  readonly rooms = new Set<string>()
  readonly hub: RoomHub
  /** Fires at the token's `exp` (see `armExpiry`). */
  expiryTimer: NodeJS.Timeout | undefined

  constructor (id: string, user: AuthUser, hub: RoomHub) {
    this.id = id
    this.user = user
    this.hub = hub
  }

  abstract get isOpen (): boolean
  /** Hands a packet to the client; false when it was not sent (closed, or dropped as a slow consumer). */
  abstract deliver (packet: HubPacket, policy: SlowConsumerPolicy): boolean
  /** Ends the session because its access token expired, telling the client why. */
  abstract expire (): void

  /** Joins a room the room policies let this user into (replaying after `since`); throws FORBIDDEN otherwise. */
  async join (room: string, options?: JoinOptions): Promise<JoinResult> {
    return await this.hub.join(this, room, options)
  }

  /** Once the session has ended: stops its expiry and leaves every room (presence follows). */
  async release (): Promise<void> {
    clearTimeout(this.expiryTimer)
    await this.hub.remove(this)
  }
}

/** Ends the session at its token's `exp` (re-arming when the timer's ceiling came first); at once when already past. */
export function armExpiry (session: HubSession): void {
  const ms = session.user.exp * 1000 - Date.now()
  if (ms <= 0) {
    session.expire()
    return
  }
  session.expiryTimer = setTimeout(armExpiry, Math.min(ms, MAX_TIMER_MS), session)
  session.expiryTimer.unref()
}
