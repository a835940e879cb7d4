-- wrk script: register+approve pairs against airisk serve, one connection per wrk thread (run
-- with -t N -c N), so each connection alternates: POST /v1/models (admin), then, once that
-- answered 201, POST …/approve (approver) for the model it just registered. Names are unique per
-- run, thread and counter. Tokens come from the environment (ADMIN_TOKEN, APPROVER_TOKEN).
--
-- The state advances in response(), not in request(): wrk calls request() once on thread 1
-- before the run to inspect it, and that call must not skip a step.
local counter = 0

function setup(thread)
  counter = counter + 1
  thread:set("tid", counter)
end

function init(args)
  admin = "Bearer " .. os.getenv("ADMIN_TOKEN")
  approver = "Bearer " .. os.getenv("APPROVER_TOKEN")
  run = os.getenv("RUN_ID") or "r"
  n = 1
  phase = "register"
end

local digest = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"

function request()
  local name = string.format("m-%s-%d-%d", run, tid, n)
  if phase == "register" then
    local body = string.format(
      '{"name":"%s","version":"1","checksum":"%s","artifact_uri":"s3://bench/%s","justification":"load test"}',
      name, digest, name)
    return wrk.format("POST", "/v1/models",
      {["Authorization"] = admin, ["Content-Type"] = "application/json"}, body)
  end
  return wrk.format("POST", "/v1/models/" .. name .. "/versions/1/approve",
    {["Authorization"] = approver, ["Content-Type"] = "application/json"},
    '{"reason":"load test"}')
end

function response(status, headers, body)
  if phase == "register" and status == 201 then
    phase = "approve"
  else
    phase = "register"
    n = n + 1
  end
end

function done(summary, latency, requests)
  io.write(string.format(
    "RESULT requests=%d seconds=%.3f non2xx=%d socket_errors=%d p50_ms=%.3f p90_ms=%.3f p99_ms=%.3f max_ms=%.3f\n",
    summary.requests, summary.duration / 1e6, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
