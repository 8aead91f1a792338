-- The lock cycle for wrk (https://github.com/wg/wrk): acquire a lock, take
-- the lease_id from the JSON answer, release it with that lease. It is the
-- lock-cycle scenario of `octostore loadtest`, driven by a client that is
-- not the project's own (loadtest/bench-compare.sh runs it; docs/benchmarks.md
-- says how its figures compare with Redis's).
--
--   OCTOSTORE_TOKEN=tok wrk -t2 -c64 -d5s --latency \
--     -s loadtest/wrk/lock-cycle.lua http://127.0.0.1:3000 -- PREFIX NAMES TTL
--
-- Arguments after "--" (all optional): PREFIX of the lock names (default
-- "wrk"; a run should use its own), NAMES per thread (default 4096), TTL in
-- seconds (default 30). The bearer token comes from OCTOSTORE_TOKEN.
--
-- Every request is an acquire or a release, as in the loadtest scenario, so
-- wrk's Requests/sec is lock operations per second (two per cycle). wrk has
-- no per-connection hook: a thread's connections share one Lua state. So an
-- acquire's answer queues its lease in the thread's FIFO, and the next
-- request any connection of the thread sends is the release of the oldest
-- queued lease; with none queued, it acquires the next name. Every lease is
-- released by the following request of its thread, and a name comes round
-- again only after NAMES acquires of that thread, long after its release
-- was answered (a thread has at most one request in flight per connection).
--
-- At the end, one line per counter goes to stdout ("lockcycle acquired N",
-- ...): the acquires granted, the releases answered, and everything else
-- (held: a name still held by this user, refused: any other answer). A run
-- whose "other" count is not 0 measured something else than the cycle.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1] or "wrk"
  names = tonumber(args[2] or "4096")
  local ttl = tonumber(args[3] or "30")
  local token = os.getenv("OCTOSTORE_TOKEN") or ""
  headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  acquireBody = string.format('{"ttl_seconds":%d}', ttl)
  queue, head, tail = {}, 1, 0
  n = 0
  acquired, released, held, refused = 0, 0, 0, 0
end

function request()
  if head <= tail then
    local name, lease = queue[head][1], queue[head][2]
    queue[head] = nil
    head = head + 1
    return wrk.format("POST", "/locks/" .. name .. "/release", headers,
      '{"lease_id":"' .. lease .. '"}')
  end
  n = n + 1
  local name = prefix .. "-" .. tid .. "-" .. (n % names)
  return wrk.format("POST", "/locks/" .. name .. "/acquire", headers, acquireBody)
end

function response(status, hdrs, body)
  if status ~= 200 then
    refused = refused + 1
    return
  end
  local st = body:match('"status":"(%a+)"')
  if st == "released" then
    released = released + 1
    return
  end
  if st ~= "acquired" and st ~= "held" then
    refused = refused + 1
    return
  end
  local name = body:match('"name":"([^"]+)"')
  local lease = body:match('"lease_id":"([^"]+)"')
  if not name or not lease then
    refused = refused + 1
    return
  end
  if st == "acquired" then
    acquired = acquired + 1
  else
    held = held + 1 -- still ours from an earlier cycle: release it too
  end
  tail = tail + 1
  queue[tail] = { name, lease }
end

function done(summary, latency, requests)
  local a, r, h, x = 0, 0, 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("acquired")
    r = r + t:get("released")
    h = h + t:get("held")
    x = x + t:get("refused")
  end
  io.write(string.format("lockcycle acquired %d\n", a))
  io.write(string.format("lockcycle released %d\n", r))
  io.write(string.format("lockcycle held %d\n", h))
  io.write(string.format("lockcycle refused %d\n", x))
  io.write(string.format("lockcycle requests %d\n", summary.requests))
  io.write(string.format("lockcycle duration_us %d\n", summary.duration))
  io.write(string.format("lockcycle p50_us %d\n", latency:percentile(50)))
  io.write(string.format("lockcycle p99_us %d\n", latency:percentile(99)))
  io.write(string.format("lockcycle p999_us %d\n", latency:percentile(99.9)))
  io.write(string.format("lockcycle max_us %d\n", latency.max))
end
