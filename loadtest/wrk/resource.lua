-- Rate-limit checks and flag evaluations for wrk, shaped like the
-- ratelimit-check and flag-eval scenarios of `octostore loadtest`
-- (loadtest/bench-compare.sh runs it; docs/benchmarks.md has the figures).
--
--   OCTOSTORE_TOKEN=tok wrk -t2 -c64 -d5s --latency \
--     -s loadtest/wrk/resource.lua http://127.0.0.1:3000 -- MODE PREFIX NAMES
--
-- MODE is "ratelimit-check" (POST /limits/PREFIX-N/check with
-- {"max_requests":100,"window_seconds":1}) or "flag-eval" (GET
-- /flags/PREFIX-N?subject=user-M; the flags must exist: bench-compare.sh
-- creates them). Each thread walks the NAMES names (default 1000) and 1,024
-- subjects in turn. The bearer token comes from OCTOSTORE_TOKEN.
--
-- At the end: "resource refused N" (answers with a status above 399, and
-- socket errors), the request count and the latency percentiles, one per
-- line.

local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end

function init(args)
  mode = args[1] or "ratelimit-check"
  prefix = args[2] or "wrk"
  names = tonumber(args[3] or "1000")
  local token = os.getenv("OCTOSTORE_TOKEN") or ""
  getHeaders = { ["Authorization"] = "Bearer " .. token }
  postHeaders = {
    ["Authorization"] = "Bearer " .. token,
    ["Content-Type"] = "application/json",
  }
  checkBody = '{"max_requests":100,"window_seconds":1}'
  -- Pre-built requests: building one per call would cost wrk more CPU
  -- than the server spends answering it.
  reqs = {}
  for i = 0, names - 1 do
    if mode == "flag-eval" then
      reqs[i] = wrk.format("GET", "/flags/" .. prefix .. "-" .. i .. "?subject=user-" .. ((i * 7 + tid) % 1024), getHeaders)
    else
      reqs[i] = wrk.format("POST", "/limits/" .. prefix .. "-" .. i .. "/check", postHeaders, checkBody)
    end
  end
  n = tid * 97
end

function request()
  n = n + 1
  return reqs[n % names]
end

-- No response(): wrk then neither parses headers nor bodies, which keeps
-- the client's CPU per request lowest; it counts statuses > 399 itself.
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("resource refused %d\n", e.status + e.connect + e.read + e.write + e.timeout))
  io.write(string.format("resource requests %d\n", summary.requests))
  io.write(string.format("resource duration_us %d\n", summary.duration))
  io.write(string.format("resource p50_us %d\n", latency:percentile(50)))
  io.write(string.format("resource p99_us %d\n", latency:percentile(99)))
  io.write(string.format("resource p999_us %d\n", latency:percentile(99.9)))
  io.write(string.format("resource max_us %d\n", latency.max))
end
