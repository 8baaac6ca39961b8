"""The Redis side of the broker: the scripts it runs and how to read what Redis answers."""

from __future__ import annotations

import redis

#: One delivered event: (id, event type, payload JSON, timestamp in seconds since the epoch).
Entry = tuple[int, str, str, float]

# Numbers and adds one event. KEYS: stream, counter. ARGV: floor, maxlen, type, data, ts.
# The counter alone is enough unless Redis lost it (restart without persistence: then the
# floor, what this process saw, keeps ids going up) or lost it but not the stream (then
# XADD refuses the id and the stream's own last id says where to continue).
PUBLISH_LUA = """
local n = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[1])
if n <= floor then
  n = floor + 1
  redis.call('SET', KEYS[2], n)
end
local function add(id)
  return redis.pcall('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], id .. '-0',
                     'type', ARGV[3], 'data', ARGV[4], 'ts', ARGV[5])
end
local added = add(n)
if type(added) == 'table' and added.err then
  local info = redis.call('XINFO', 'STREAM', KEYS[1])
  for i = 1, #info, 2 do
    if info[i] == 'last-generated-id' then
      n = tonumber(string.match(info[i + 1], '^(%d+)')) + 1
    end
  end
  redis.call('SET', KEYS[2], n)
  added = add(n)
  if type(added) == 'table' and added.err then return added end
end
return n
"""

# After a reconnection: the counter must not be below what this process has seen.
SEED_LUA = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return n
"""


#: Refusals that end by themselves (memory freed, failover done, dataset loaded, ...).
_TRANSIENT = (
    redis.exceptions.ReadOnlyError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.BusyLoadingError,
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,  # includes MASTERDOWN
)
_TRANSIENT_CODES = ("MISCONF", "NOREPLICAS", "BUSY")  # redis-py has no class for these


def is_transient(result: object) -> bool:
    """Whether ``result`` is a refusal to retry later rather than to drop the event for."""
    if isinstance(result, _TRANSIENT):
        return True
    return isinstance(result, redis.ResponseError) and str(result).startswith(_TRANSIENT_CODES)


def decode(entry: tuple[str, dict]) -> Entry | None:
    """A stream entry as an `Entry`; None for an entry this module did not write."""
    stream_id, fields = entry
    try:
        return (
            int(stream_id.split("-", 1)[0]),
            fields["type"],
            fields["data"],
            float(fields["ts"]),
        )
    except (KeyError, ValueError):
        return None
