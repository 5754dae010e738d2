"""The Lua scripts of the Redis leaderboards (app.services.board_cache runs them): one
call per write of every board a batch touched, and one per page read."""

from __future__ import annotations

# KEYS: (zset, hash, state) per board. ARGV: per board, in the same order, expire-at (0:
# never) and the (pk, score, member) triples as one flat JSON array of strings (one
# argument to encode, not three per player); an empty member removes the player (hidden
# from public boards). Then (channel, message) pairs, published once every board is
# written: one call, one round trip, however many boards a batch touched. A board
# without a state is skipped (not built: it rebuilds from the record).
APPLY = """
local boards = #KEYS / 3
local changed = 0
for b = 0, boards - 1 do
  local zset, hash, state = KEYS[3 * b + 1], KEYS[3 * b + 2], KEYS[3 * b + 3]
  local st = redis.call('GET', state)
  if st == 'ready' and redis.call('ZCARD', zset) ~= redis.call('HLEN', hash) then
    -- One of the two lost (evicted, deleted): a write would make it worse. Dropped
    -- whole; the next read serves SQL and rebuilds it.
    redis.call('DEL', zset, hash, state)
    st = false
  end
  if st then
    local rows = cjson.decode(ARGV[2 * b + 2])
    for i = 1, #rows, 3 do
      local pk, score, member = rows[i], tonumber(rows[i + 1]), rows[i + 2]
      local old = redis.call('HGET', hash, pk)
      if member == '' then
        if old then
          redis.call('ZREM', zset, old)
          redis.call('HDEL', hash, pk)
          changed = changed + 1
        end
      else
        local keep = false
        if old then
          local stored = redis.call('ZSCORE', zset, old)
          if stored and tonumber(stored) <= score then
            keep = true
          else
            redis.call('ZREM', zset, old)
          end
        end
        if not keep then
          redis.call('ZADD', zset, score, member)
          redis.call('HSET', hash, pk, member)
          changed = changed + 1
        end
      end
    end
    local expire_at = ARGV[2 * b + 1]
    if expire_at ~= '0' then
      for k = 3 * b + 1, 3 * b + 3 do redis.call('EXPIREAT', KEYS[k], expire_at) end
    end
  end
end
for i = 2 * boards + 1, #ARGV, 2 do
  redis.call('PUBLISH', ARGV[i], ARGV[i + 1])
end
return changed
"""

# A read script's first lines (KEYS: zset, hash, state first): false when the board is
# not ready; a board whose set and hash disagree (one evicted, deleted) is dropped whole,
# to be rebuilt from the record; else `total`, its size. `place` appends a player's
# 0-based rank and score on a board to `out`, or -1 and '0' when not on it.
_READY = """
local function place(out, zset, hash, pk)
  local member = redis.call('HGET', hash, pk)
  if member then
    out[#out + 1] = redis.call('ZRANK', zset, member)
    out[#out + 1] = redis.call('ZSCORE', zset, member)
  else
    out[#out + 1] = -1
    out[#out + 1] = '0'
  end
end
if redis.call('GET', KEYS[3]) ~= 'ready' then return false end
local total = redis.call('ZCARD', KEYS[1])
if total ~= redis.call('HLEN', KEYS[2]) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])  -- partly lost: rebuilt from the record
  return false
end
"""

# KEYS: zset, hash, state, previous zset, previous hash, previous state.
# ARGV: offset, count, around pk ('' for none).
# Returns false when the board is not ready; else {total, around rank (-1: none asked,
# -2: not on this board), offset, page (member, score, …), previous ('' when the
# previous board is not ready, else rank/score pairs for the page then the around player,
# -1 where absent), the around player's score}.
READ = (
    _READY
    + """local offset, count = tonumber(ARGV[1]), tonumber(ARGV[2])
local rank, mine, mine_score = -1, nil, '0'
if ARGV[3] ~= '' then
  mine = redis.call('HGET', KEYS[2], ARGV[3])
  if not mine then return {total, -2, offset, {}, '', '0'} end
  rank = redis.call('ZRANK', KEYS[1], mine)
  mine_score = redis.call('ZSCORE', KEYS[1], mine)
  offset = math.max(rank - math.floor(count / 2), 0)
end
local page = {}
if count > 0 then
  page = redis.call('ZRANGE', KEYS[1], offset, offset + count - 1, 'WITHSCORES')
end
local previous = ''
if redis.call('GET', KEYS[6]) == 'ready' then
  previous = {}
  local members = {}
  for i = 1, #page, 2 do members[#members + 1] = page[i] end
  if mine then members[#members + 1] = mine end
  for _, member in ipairs(members) do
    local pk = tostring(tonumber(string.sub(member, -12)))
    place(previous, KEYS[4], KEYS[5], pk)
  end
end
return {total, rank, offset, page, previous, mine_score}
"""
)

# KEYS: zset, hash, state. ARGV: player pks. Returns false when the board is not ready;
# else {total, then per pk its 0-based rank and score (-1 and '0' when the player is not
# on the public board)}: many players' places in one call (rankChanged's shared looks).
RANKS = (
    _READY
    + """local out = {total}
for i = 1, #ARGV do place(out, KEYS[1], KEYS[2], ARGV[i]) end
return out
"""
)
