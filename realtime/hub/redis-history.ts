// The Redis room history's total bound (ROOM_HISTORY_MAX_ROOMS, ROOM_HISTORY_MAX_BYTES), as a Lua
// function the bus's publish script runs in the same atomic step as each append. An index beside the
// streams — the rooms with history in a sorted set by last write, each room's text bytes in a hash,
// their sum in a counter — lets it evict the least recently written rooms first, then the written
// room's own oldest entries, as the in-process history does. Streams expire `ttl` after their last
// write; index entries that old are dropped as theirs expire, and a stream lost behind the index's
// back (Redis eviction, a manual DEL) is noticed on its room's next write.
// The script reads and deletes other rooms' streams by name (not declared as KEYS): fine on one Redis
// server, which is what the hub uses; Redis Cluster would need the history under one hash tag.

export interface HistoryIndexKeys {
  /** Sorted set: room → time of its last write. */
  rooms: string
  /** Hash: room → text bytes of its stream. */
  sizes: string
  /** Counter: text bytes of every room's stream. */
  total: string
}

/** The index's keys under the bus's key prefix. */
export function historyIndexKeys (prefix: string): HistoryIndexKeys {
  return { rooms: `${prefix}history-rooms`, sizes: `${prefix}history-sizes`, total: `${prefix}history-bytes` }
}

// Defines `appendToHistory(h, id, event, text)`, which returns the number of rooms it evicted. `h`:
// stream, rooms, sizes, total (keys), room, streamPrefix, size (entries per room), now (ms, as text), ttl (ms),
// maxRooms, maxBytes. Entries are XADDed as fields t, e, p: the text is an entry's sixth field.
export const APPEND_TO_HISTORY_LUA = `
local function textBytes (entries)
  local bytes = 0
  for _, entry in ipairs(entries) do bytes = bytes + #entry[2][6] end
  return bytes
end

local function appendToHistory (h, id, event, text)
  local total = redis.call('GET', h.total)
  if total then
    total = tonumber(total)
  else
    total = 0
    for _, bytes in ipairs(redis.call('HVALS', h.sizes)) do total = total + tonumber(bytes) end
  end
  local function forget (room)
    total = total - tonumber(redis.call('HGET', h.sizes, room) or '0')
    redis.call('DEL', h.streamPrefix .. room)
    redis.call('HDEL', h.sizes, room)
    redis.call('ZREM', h.rooms, room)
  end

  -- Rooms not written for the ttl: their streams have expired (a few per call; each goes once).
  local expired = redis.call('ZRANGEBYSCORE', h.rooms, '-inf', string.format('%.0f', tonumber(h.now) - h.ttl), 'LIMIT', 0, 32)
  for _, room in ipairs(expired) do forget(room) end

  -- This room's bytes: from the index, measured once when the index does not know its stream.
  local bytes = 0
  if redis.call('EXISTS', h.stream) == 0 then
    forget(h.room)
  else
    local known = redis.call('HGET', h.sizes, h.room)
    if known then
      bytes = tonumber(known)
    else
      bytes = textBytes(redis.call('XRANGE', h.stream, '-', '+'))
      total = total + bytes
    end
  end

  local added = redis.pcall('XADD', h.stream, id, 't', h.now, 'e', event, 'p', text)
  if type(added) == 'table' and added.err then
    -- The counter restarted below the history's last id (the counter expired first): start afresh.
    total = total - bytes
    bytes = 0
    redis.call('DEL', h.stream)
    redis.call('XADD', h.stream, id, 't', h.now, 'e', event, 'p', text)
  end
  bytes = bytes + #text
  total = total + #text
  local extra = redis.call('XLEN', h.stream) - h.size
  if extra > 0 then
    local freed = textBytes(redis.call('XRANGE', h.stream, '-', '+', 'COUNT', extra))
    redis.call('XTRIM', h.stream, 'MAXLEN', h.size)
    bytes = bytes - freed
    total = total - freed
  end
  redis.call('ZADD', h.rooms, h.now, h.room)

  -- Over a bound: the least recently written other rooms go first...
  local evicted = 0
  while redis.call('ZCARD', h.rooms) > h.maxRooms or total > h.maxBytes do
    local oldest = redis.call('ZRANGE', h.rooms, 0, 1)
    local victim = oldest[1]
    if victim == h.room then victim = oldest[2] end
    if not victim then break end
    forget(victim)
    evicted = evicted + 1
  end
  -- ...then this room's own oldest entries (its newest always stays).
  while total > h.maxBytes and redis.call('XLEN', h.stream) > 1 do
    local first = redis.call('XRANGE', h.stream, '-', '+', 'COUNT', 1)[1]
    redis.call('XDEL', h.stream, first[1])
    bytes = bytes - #first[2][6]
    total = total - #first[2][6]
  end

  redis.call('HSET', h.sizes, h.room, bytes)
  -- The index outlives every stream it lists: each write renews both.
  for _, key in ipairs({h.stream, h.rooms, h.sizes}) do redis.call('PEXPIRE', key, h.ttl) end
  redis.call('SET', h.total, total, 'PX', h.ttl)
  return evicted
end
`
