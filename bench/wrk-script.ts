// The wrk Lua script the benchmarks drive the click service with, and how to read its summary.
// Each wrk thread walks its own stride of a file of pre-signed click paths (no impression is sent
// twice) and counts 302s; `done` prints one `WRK_JSON {...}` line. With a `rate`, each thread hands
// out send slots `1000 / (rate / threads)` ms apart from its own clock (LuaJIT ffi: wrk's Lua has no
// millisecond clock) and a connection waits for its slot (wrk's delay()); a slot missed during a
// stall is sent late rather than dropped, so the offered rate stays `rate` whatever the latency, as
// long as the server keeps up on average. Without a rate, wrk runs closed-loop: as fast as the
// server answers.
export interface WrkResult {
  requests: number;
  seconds: number;
  p50_us: number;
  p99_us: number;
  max_us: number;
  errors: number;
  /** `errors` by kind, as wrk counts them (a timeout: no answer within `--timeout`). */
  connect?: number;
  read?: number;
  write?: number;
  timeout?: number;
  c302: number;
  other: number;
  /** Answers 400–499 and 500–599 among `other`. */
  s4xx?: number;
  s5xx?: number;
  /** Times a streamed thread ran out of paths and started its file again. */
  wraps?: number;
}

export function wrkScript(opts: { threads: number; rate?: number; streamed?: boolean }): string {
  const pacing =
    opts.rate === undefined
      ? ''
      : `
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_usec; } adclick_timeval;
int gettimeofday(adclick_timeval *tv, void *tz);
]]
local tv = ffi.new("adclick_timeval")
local function now_ms()
  ffi.C.gettimeofday(tv, nil)
  return tonumber(tv.tv_sec) * 1000 + tonumber(tv.tv_usec) / 1000
end
local interval = 1000 / (${opts.rate} / ${opts.threads})
local next_at = 0
function delay()
  local t = now_ms()
  if next_at == 0 then next_at = t end
  -- Slots are never dropped: after a stall the thread catches up (constant throughput, as wrk2).
  local slot = next_at
  next_at = slot + interval
  return math.max(0, math.floor(slot - t))
end
`;
  return `${pacing}
local counter = 0
local threads = {}
function setup(thread)
  thread:set("tid", counter)
  counter = counter + 1
  table.insert(threads, thread)
end
${
  opts.streamed
    ? `function init(args)
  paths = io.open(os.getenv("BENCH_PATHS") .. "." .. tid, "r")
  c302, other, s4xx, s5xx, wraps = 0, 0, 0, 0, 0
end
function request()
  local p = paths:read("*l")
  if p == nil then
    paths:seek("set", 0)
    wraps = wraps + 1
    p = paths:read("*l")
  end
  return wrk.format("GET", p)
end
`
    : `function init(args)
  paths = {}
  local n = 0
  for line in io.lines(os.getenv("BENCH_PATHS")) do
    if n % ${opts.threads} == tid then paths[#paths + 1] = line end
    n = n + 1
  end
  i = 1
  c302, other, s4xx, s5xx, wraps = 0, 0, 0, 0, 0
end
function request()
  local p = paths[i]
  i = i + 1
  if i > #paths then i = 1 end
  return wrk.format("GET", p)
end
`
}function response(status, headers, body)
  if status == 302 then c302 = c302 + 1 else
    other = other + 1
    if status >= 500 then s5xx = s5xx + 1 elseif status >= 400 then s4xx = s4xx + 1 end
  end
end
function done(summary, latency, requests)
  local s302, sother, s4, s5, sw = 0, 0, 0, 0, 0
  for _, t in ipairs(threads) do
    s302 = s302 + t:get("c302"); sother = sother + t:get("other")
    s4 = s4 + t:get("s4xx"); s5 = s5 + t:get("s5xx"); sw = sw + t:get("wraps")
  end
  local e = summary.errors
  io.write(string.format('WRK_JSON {"requests":%d,"seconds":%f,"p50_us":%d,"p99_us":%d,"max_us":%d,"errors":%d,"connect":%d,"read":%d,"write":%d,"timeout":%d,"c302":%d,"other":%d,"s4xx":%d,"s5xx":%d,"wraps":%d}\\n',
    summary.requests, summary.duration / 1e6, latency:percentile(50), latency:percentile(99), latency.max,
    e.connect + e.read + e.write + e.timeout, e.connect, e.read, e.write, e.timeout, s302, sother, s4, s5, sw))
end
`;
}

/** The summary line of a wrk run's output. */
export function parseWrkSummary(output: string): WrkResult {
  const line = output.split('\n').find((l) => l.startsWith('WRK_JSON '));
  if (!line) throw new Error(`wrk gave no summary:\n${output.slice(-2000)}`);
  return JSON.parse(line.slice('WRK_JSON '.length)) as WrkResult;
}
