// Presence shared by every instance (REDIS_URL): per room a sorted set whose members are
// `user \n instance` and whose scores are expiry times. Each instance counts its own connections per
// user and room, writes one entry per (room, user) it hosts, and renews them on a timer; an instance
// that dies stops renewing, so its users drop out of every room within the TTL, and the instance that
// sweeps them reports it (`onExpired`) so the hub announces `presence:leave`. A user on two
// instances is one user. While Redis is down, answers come from this instance's own members.

import type { Redis } from 'ioredis'
import { createLocalPresence, type PresenceChange, type PresenceStore } from './room-hub.ts'

export interface RedisPresenceOptions {
  redis: Redis
  instanceId: string
  /** An entry not renewed for this long is gone (a crashed instance's members leave within it). */
  ttlMs: number
  onError: (err: unknown, what: string) => void
  keyPrefix?: string
  now?: () => number
}

// Distinct live users of a room, and whether ARGV[2] (a user) is among them. KEYS: room set.
// ARGV: now, user. Entries are `user\ninstance`.
const COUNT_LUA = `
local live = redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. ARGV[1], '+inf')
local users, count, present = {}, 0, 0
for _, member in ipairs(live) do
  local user = string.match(member, '^(.*)\\n[^\\n]*$')
  if user and not users[user] then
    users[user] = true
    count = count + 1
    if user == ARGV[2] then present = 1 end
  end
end
`

// KEYS: room set. ARGV: now, user, member, expiry, key ttl. Returns {user was present elsewhere, count}.
const ADD_SCRIPT = COUNT_LUA + `
redis.call('ZADD', KEYS[1], ARGV[4], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
if present == 0 then count = count + 1 end
return {present, count}
`

// KEYS: room set. ARGV: now, user, member. Returns {user still present elsewhere, count}.
const REMOVE_SCRIPT = 'redis.call(\'ZREM\', KEYS[1], ARGV[3])' + COUNT_LUA + `
return {present, count}
`

// KEYS: room set. ARGV: now. Removes expired entries; returns the count and the users left with none.
const SWEEP_SCRIPT = `
local expired = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if #expired == 0 then return {-1} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
` + COUNT_LUA.replace('ARGV[2]', "''") + `
local gone = {count}
local seen = {}
for _, member in ipairs(expired) do
  local user = string.match(member, '^(.*)\\n[^\\n]*$')
  if user and not users[user] and not seen[user] then
    seen[user] = true
    table.insert(gone, user)
  end
end
return gone
`

// KEYS: room set. ARGV: now. Returns the distinct live users.
const LIST_SCRIPT = COUNT_LUA.replace('ARGV[2]', "''") + `
local list = {}
for user in pairs(users) do table.insert(list, user) end
return list
`

interface ScriptedRedis {
  keelPresenceAdd: (key: string, now: number, user: string, member: string, expiry: number, ttl: number) => Promise<[number, number]>
  keelPresenceRemove: (key: string, now: number, user: string, member: string) => Promise<[number, number]>
  keelPresenceSweep: (key: string, now: number) => Promise<[number, ...string[]]>
  keelPresenceList: (key: string, now: number) => Promise<string[]>
}

export function createRedisPresence (options: RedisPresenceOptions): PresenceStore {
  const { redis, instanceId, ttlMs, onError } = options
  const prefix = options.keyPrefix ?? 'keel:presence:'
  const now = options.now ?? Date.now
  const key = (room: string) => prefix + room
  const member = (user: string) => `${user}\n${instanceId}`

  redis.defineCommand('keelPresenceAdd', { numberOfKeys: 1, lua: ADD_SCRIPT })
  redis.defineCommand('keelPresenceRemove', { numberOfKeys: 1, lua: REMOVE_SCRIPT })
  redis.defineCommand('keelPresenceSweep', { numberOfKeys: 1, lua: SWEEP_SCRIPT })
  redis.defineCommand('keelPresenceList', { numberOfKeys: 1, lua: LIST_SCRIPT })
  const scripts = redis as unknown as ScriptedRedis

  // This instance's own members, counted per connection: the source of renewals and the outage answers.
  const local = createLocalPresence()
  const hosted = new Map<string, Set<string>>()
  let expired: (room: string, users: string[], count: number) => void = () => {}

  async function write (room: string, user: string): Promise<[number, number]> {
    const at = now()
    return await scripts.keelPresenceAdd(key(room), at, user, member(user), at + ttlMs, ttlMs * 2)
  }

  /** Renews this instance's entries and sweeps the expired ones of the rooms it hosts. */
  async function renew (): Promise<void> {
    if (redis.status !== 'ready') return
    for (const [room, users] of hosted) {
      try {
        // Own entries first, so a sweep never reports a user this instance still hosts.
        for (const user of users) await write(room, user)
        const [count, ...gone] = await scripts.keelPresenceSweep(key(room), now())
        if (count >= 0 && gone.length > 0) expired(room, gone, count)
      } catch (err) {
        onError(err, 'renewing presence in Redis')
        return
      }
    }
  }
  // Three renewals per TTL: an entry survives one lost renewal.
  const timer = setInterval(() => { renew().catch((err: unknown) => onError(err, 'renewing presence in Redis')) }, Math.max(10, Math.floor(ttlMs / 3)))
  timer.unref()
  // Back from an outage: the entries may have expired meanwhile; write them again at once.
  redis.on('ready', () => { renew().catch((err: unknown) => onError(err, 'renewing presence in Redis')) })

  /** Whether the user counts as present elsewhere, from a Redis answer; the local answer when Redis failed. */
  function shared (change: PresenceChange, answer: [number, number] | undefined): PresenceChange {
    if (answer === undefined) return change
    const [elsewhere, count] = answer
    return { changed: change.changed && elsewhere === 0, count }
  }

  return {
    async add (room, user) {
      const change = await local.add(room, user)
      // Another connection of this user is here already: nothing to announce.
      if (!change.changed) return change
      let users = hosted.get(room)
      if (users === undefined) hosted.set(room, users = new Set())
      users.add(user)
      try {
        return shared(change, await write(room, user))
      } catch (err) {
        onError(err, 'adding presence in Redis')
        return change
      }
    },
    async remove (room, user) {
      const change = await local.remove(room, user)
      if (!change.changed) return change
      const users = hosted.get(room)
      users?.delete(user)
      if (users?.size === 0) hosted.delete(room)
      try {
        return shared(change, await scripts.keelPresenceRemove(key(room), now(), user, member(user)))
      } catch (err) {
        onError(err, 'removing presence in Redis')
        return change
      }
    },
    async list (room) {
      try {
        if (redis.status === 'ready') return (await scripts.keelPresenceList(key(room), now())).sort()
      } catch (err) {
        onError(err, 'listing presence in Redis')
      }
      return (await local.list(room)).sort()
    },
    onExpired (fn) { expired = fn },
    async close () { clearInterval(timer) }
  }
}
