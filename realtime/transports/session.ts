// What every real-time session shares whatever its transport (a WebSocket connection, an SSE stream):
// its membership in the hub and the end of its access token's life. A session that ends leaves the hub
// only once its joins in flight have settled: a join that completed after the leave would make a client
// that is gone a member again for good (its presence renewed, its rooms watched in Redis). Each
// transport says how it delivers a packet and how it ends on expiry.

import type { AuthUser } from '../../auth/access-token.ts'
import { AppError, ErrorCode } from '../../core/errors.ts'
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
  /** Joins in flight, and what `release` waits on for them to settle. */
  #joins = 0
  #joinsSettled: (() => void) | undefined
  #released: Promise<void> | undefined

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
    if (this.#released !== undefined) throw new AppError(ErrorCode.SERVICE_UNAVAILABLE, 'this session has ended')
    this.#joins++
    try {
      return await this.hub.join(this, room, options)
    } finally {
      if (--this.#joins === 0) this.#joinsSettled?.()
    }
  }

  /**
   * Once the session has ended (called again, the same promise): no more joins; stops its expiry; and
   * once the joins in flight have settled, leaves every room (presence follows) and the hub.
   */
  async release (): Promise<void> {
    this.#released ??= this.#leaveHub()
    await this.#released
  }

  async #leaveHub (): Promise<void> {
    clearTimeout(this.expiryTimer)
    if (this.#joins > 0) await new Promise<void>((resolve) => { this.#joinsSettled = resolve })
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
