-- wrk script of the manufacture benchmark and of its bare-FastAPI reference.
-- Arguments: <DSN file or -> <Authorization header or -> <model> <wrk threads>
-- With a DSN file, requests go to /devicefactory/v1/devices/<dsn>/manufacture and each
-- wrk thread takes every n-th DSN, so no two requests ever touch the same device.
-- With -, requests go to /echo with a body of the same shape and size.

local threads = {}
local next_id = 0

function setup(thread)
  thread:set("id", next_id)
  next_id = next_id + 1
  table.insert(threads, thread)
end

function init(args)
  nthreads = tonumber(args[4])
  counter = 0
  exhausted = 0
  model = args[3]
  headers = { ["Content-Type"] = "application/json" }
  if args[2] ~= "-" then
    headers["Authorization"] = args[2]
  end
  dsns = nil
  if args[1] ~= "-" then
    dsns = {}
    local index = 0
    for line in io.lines(args[1]) do
      if index % nthreads == id then
        table.insert(dsns, line)
      end
      index = index + 1
    end
  end
end

local function body(dsn, sequence)
  return string.format(
    '{"model":"%s","mac":"%012x","hwsig":"bench-%s","dom_at":"2026/01/02 03:04:05 UTC","manuf_model":"bench"}',
    model, sequence, dsn)
end

function request()
  counter = counter + 1
  if dsns == nil then
    local sequence = counter * nthreads + id
    return wrk.format("POST", "/echo", headers, body(string.format("BENCH%09d", sequence), sequence))
  end
  local dsn = dsns[counter]
  if dsn == nil then
    -- Out of reserved devices: stop this thread; the run is reported as invalid.
    exhausted = 1
    wrk.thread:stop()
    dsn = dsns[#dsns] or "NONE"
  end
  local path = "/devicefactory/v1/devices/" .. dsn .. "/manufacture"
  return wrk.format("POST", path, headers, body(dsn, tonumber(dsn:sub(-9))))
end

function done(summary, latency, requests)
  local out_of_devices = 0
  for _, thread in ipairs(threads) do
    out_of_devices = out_of_devices + (thread:get("exhausted") or 0)
  end
  io.write(string.format(
    'BENCH-JSON {"requests":%d,"duration_us":%d,"non_2xx":%d,"socket_errors":%d,' ..
    '"p50_us":%d,"p90_us":%d,"p99_us":%d,"max_us":%d,"mean_us":%.1f,"threads_out_of_devices":%d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean,
    out_of_devices))
end
