-- wrk script: audit appends against airisk serve (POST /v1/audit/events as an analyst), each
-- with a unique resource id. Token from the environment (ANALYST_TOKEN).
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  analyst = "Bearer " .. os.getenv("ANALYST_TOKEN")
  run = os.getenv("RUN_ID") or "r"
  n = 0
end

function request()
  n = n + 1
  local body = string.format(
    '{"action":"report.generate","resource_type":"report","resource_id":"%s-%d-%d","reason":"load test","metadata":{"pages":12,"format":"pdf"}}',
    run, tid, n)
  return wrk.format("POST", "/v1/audit/events",
    {["Authorization"] = analyst, ["Content-Type"] = "application/json"}, body)
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f non2xx=%d socket_errors=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
