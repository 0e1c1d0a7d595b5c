#!/usr/bin/env bash
# Measures the delivery engine (package notifier) on this machine, in one run:
#   1. the raw ceiling: plain Go HTTP POSTs of the same body to the same receiver, no queue;
#   2. sustained deliveries/s for 100,000 deliveries over 1,000 and over 10 endpoints, enqueued
#      through the Go API first, then drained by one engine (per-endpoint rate limit raised to
#      10M/min and max in flight to 1000 so the limits do not cap throughput; 1,024 workers);
#   3. end-to-end latency p50/p99 (Enqueue call -> request at the receiver) at a steady 1,000/s;
#   4. peak RSS of an engine process while 1,000,000 deliveries wait in Redis;
#   5. phases 1 and 2 again with Redis pinned to a CPU of its own (production keeps Redis off the
#      herald machine's cores), when the machine has two or more.
# It uses a throwaway redis-server and a receiver process on loopback, and stops both at the end.
# Flags: BENCH_N (100000), BENCH_RSS_N (1000000), BENCH_LAT_SECONDS (10), BENCH_WORKERS (1024),
# BENCH_ROUNDS (3: phases 1 and 2 run this many times, interleaved; the summary gives medians).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (the figures depend on what else runs)"

n="${BENCH_N:-100000}"
rss_n="${BENCH_RSS_N:-1000000}"
lat_s="${BENCH_LAT_SECONDS:-10}"
# herald drains with 1,024 workers (--workers): more tries at once make bigger batches, so fewer
# Redis calls per delivery; past 1,024 it gains nothing here. The ceiling does best at 64.
workers="${BENCH_WORKERS:-1024}"

# herald runs with GOGC=400 (cmd/herald/main.go); the engine runs inside benchengine here, so the
# bench sets the same, for every phase alike (the ceiling and the receiver too).
export GOGC="${GOGC:-400}"

source scripts/lib.sh
bench_workdir

go build -o "$work/benchengine" ./scripts/benchengine

start_redis "$work"
port=$REDIS_PORT

# start_receiver OUTFILE [command prefix...]: starts a receiver (under the prefix, e.g. taskset),
# adds it to pids, waits until it prints its URL into OUTFILE and sets target to that URL.
start_receiver() {
  local out=$1; shift
  "$@" "$work/benchengine" receiver -addr 127.0.0.1:0 >"$out" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$out" ] && break; sleep 0.1; done
  target="$(head -1 "$out")"
}
start_receiver "$work/receiver.out"

b="$work/benchengine"
r="127.0.0.1:$port"
results="$work/results"
# Throughput rounds: the ceiling and herald back to back, so each ratio compares figures taken
# moments apart (this machine is shared and its speed wanders); the summary gives the median.
rounds="${BENCH_ROUNDS:-3}"
throughput_rounds() { # $1: phase suffix ("" or "-pinned"); $2...: command prefix (taskset or none)
  local sfx=$1; shift
  for round in $(seq "$rounds"); do
    echo "== round $round$sfx: ceiling (plain Go POSTs, 64 concurrent), then herald over 1000 and 10 endpoints"
    "$@" "$b" ceiling -target "$target" -n "$n" -workers 64 | sed "s/phase=ceiling/phase=ceiling$sfx round=$round/" | tee -a "$results"
    for e in 1000 10; do
      "$@" "$b" throughput -redis "$r" -target "$target" -n "$n" -endpoints $e -workers "$workers" | sed "s/phase=throughput/phase=throughput$sfx round=$round/" | tee -a "$results"
    done
  done
}
throughput_rounds ""
echo "== plain Go POSTs at 1000/s (the machine's latency floor)"; "$b" latency-floor -target "$target" -rate 1000 -duration "${lat_s}s" -endpoints 100 | tee -a "$results"
echo "== herald, end-to-end latency at 1000/s";           "$b" latency -redis "$r" -target "$target" -rate 1000 -duration "${lat_s}s" -endpoints 100 | tee -a "$results"
echo "== herald, peak RSS with $rss_n deliveries waiting"; "$b" rss -redis "$r" -target "$target" -n "$rss_n" -endpoints 1000 | tee -a "$results"

# The throughput rounds again with Redis on a CPU of its own, as in production, where Redis does
# not share the herald machine's cores: Redis on the last CPU, everything else (ceiling, herald,
# receiver) on the others. Skipped on one CPU or without taskset.
ncpu=$(nproc)
if [[ $ncpu -ge 2 ]] && command -v taskset >/dev/null; then
  others="0-$((ncpu - 2))"
  kill "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
  pids=() # reaped: the EXIT trap must not signal their PIDs, which may be reused
  stop_redis
  REDIS_CPUS=$((ncpu - 1)) start_redis "$work"
  r="127.0.0.1:$REDIS_PORT"
  start_receiver "$work/receiver2.out" taskset -c "$others"
  echo "== Redis on CPU $((ncpu - 1)), the rest on CPUs $others"
  throughput_rounds "-pinned" taskset -c "$others"
fi

python3 - "$results" <<'PY'
import statistics, sys
rows = []
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))

def throughput(sfx, title):
    ceil = {r["round"]: r for r in rows if r["phase"] == "ceiling" + sfx}
    if not ceil:
        return
    print(title)
    cs = [float(c["per_sec"]) for c in ceil.values()]
    c0 = list(ceil.values())[0]
    print(f"  raw ceiling:           median {statistics.median(cs):,.0f} POST/s (rounds: {', '.join(f'{x:,.0f}' for x in cs)}); CPU per POST: client {c0['client_cpu_us_per_post']} us + receiver {c0['receiver_cpu_us_per_post']} us")
    for ep in ("1000", "10"):
        hs = [r for r in rows if r["phase"] == "throughput" + sfx and r["endpoints"] == ep]
        ratios = [float(h["per_sec"]) / float(ceil[h["round"]]["per_sec"]) for h in hs]
        med = sorted(hs, key=lambda h: float(h["per_sec"]) / float(ceil[h["round"]]["per_sec"]))[len(hs) // 2]
        print(f"  herald {ep:>4} endpoints: median {statistics.median(ratios):.2f} of the ceiling (rounds: {', '.join(f'{x:.2f}' for x in ratios)}; target >= 0.5); {float(med['per_sec']):,.0f} deliveries/s in the median round")
        print(f"                         CPU per delivery there: herald {med['herald_cpu_us_per_delivery']} us + Redis {med['redis_cpu_us_per_delivery']} us + receiver {med['receiver_cpu_us_per_delivery']} us; enqueue {float(med['enqueue_per_sec']):,.0f}/s at {med['redis_cpu_us_per_enqueue']} us of Redis CPU each")

print("\n== summary")
throughput("", "everything on the same CPUs:")
for r in rows:
    if r["phase"] == "latency-floor":
        print(f"plain POSTs at 1000/s:  p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (no queue: this machine's floor)")
    if r["phase"] == "latency":
        print(f"end-to-end at 1000/s:   p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (target p99 < 5 ms), {r['delivered']}/{r['n']} delivered, {r['duplicates']} duplicates")
    if r["phase"] == "rss":
        print(f"peak RSS, {int(r['waiting']):,} waiting: {r['peak_rss_mb']} MB (target < 150 MB); Redis used {r['redis_used_memory']}")
throughput("-pinned", "with Redis on a CPU of its own (ceiling, herald and receiver on the others):")
PY
