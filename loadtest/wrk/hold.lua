-- Take many locks and keep them, for wrk: every request acquires a lock
-- nobody holds (PREFIX-THREAD-N, N counting up), for TTL seconds, and a
-- thread stops once PER_THREAD of its acquires were answered.
-- loadtest/mem-report.sh runs it to measure the memory of held locks.
--
--   OCTOSTORE_TOKEN=tok wrk -t2 -c64 -d900s \
--     -s loadtest/wrk/hold.lua http://127.0.0.1:3000 -- PREFIX PER_THREAD TTL
--
-- Up to one request per connection is still on the wire when a thread
-- stops; the server grants those too, so count what is held on the server
-- (mem-report.sh reads octostore_resources{kind="lock"}).
--
-- At the end: "hold acquired N" (answered 200) and "hold refused N".

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  prefix = args[1] or "hold"
  per = tonumber(args[2] or "100000")
  local ttl = tonumber(args[3] or "3600")
  local token = os.getenv("OCTOSTORE_TOKEN") or ""
  headers = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  body = string.format('{"ttl_seconds":%d}', ttl)
  base = "/locks/" .. prefix .. "-" .. tid .. "-"
  n = 0
  acquired, refused = 0, 0
end

function request()
  n = n + 1
  return wrk.format("POST", base .. n .. "/acquire", headers, body)
end

function response(status, hdrs, body)
  if status == 200 then
    acquired = acquired + 1
  else
    refused = refused + 1
  end
  if acquired + refused >= per then
    wrk.thread:stop()
  end
end

function done(summary, latency, requests)
  local a, x = 0, 0
  for _, t in ipairs(threads) do
    a = a + t:get("acquired")
    x = x + t:get("refused")
  end
  io.write(string.format("hold acquired %d\n", a))
  io.write(string.format("hold refused %d\n", x))
  io.write(string.format("hold requests %d\n", summary.requests))
  io.write(string.format("hold duration_us %d\n", summary.duration))
end
