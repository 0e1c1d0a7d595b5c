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
# Flags: BENCH_N (100000), BENCH_RSS_N (1000000), BENCH_LAT_SECONDS (10), BENCH_WORKERS (1024).
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
work="$(mktemp -d)"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  stop_redis
  rm -rf "$work"
}
trap cleanup EXIT

go build -o "$work/benchengine" ./scripts/benchengine

start_redis "$work"
port=$REDIS_PORT

"$work/benchengine" receiver -addr 127.0.0.1:0 >"$work/receiver.out" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/receiver.out" ] && break; sleep 0.1; done
target="$(head -1 "$work/receiver.out")"

b="$work/benchengine"
r="127.0.0.1:$port"
results="$work/results"
echo "== ceiling (plain Go POSTs, 64 concurrent)";       "$b" ceiling -target "$target" -n "$n" -workers 64 | tee -a "$results"
echo "== herald, $n deliveries over 1000 endpoints";      "$b" throughput -redis "$r" -target "$target" -n "$n" -endpoints 1000 -workers "$workers" | tee -a "$results"
echo "== herald, $n deliveries over 10 endpoints";        "$b" throughput -redis "$r" -target "$target" -n "$n" -endpoints 10 -workers "$workers" | tee -a "$results"
echo "== plain Go POSTs at 1000/s (the machine's latency floor)"; "$b" latency-floor -target "$target" -rate 1000 -duration "${lat_s}s" -endpoints 100 | tee -a "$results"
echo "== herald, end-to-end latency at 1000/s";           "$b" latency -redis "$r" -target "$target" -rate 1000 -duration "${lat_s}s" -endpoints 100 | tee -a "$results"
echo "== herald, peak RSS with $rss_n deliveries waiting"; "$b" rss -redis "$r" -target "$target" -n "$rss_n" -endpoints 1000 | tee -a "$results"

# The same throughput phases with Redis on a core of its own, as in production, where Redis
# does not share the herald machine's cores: Redis on the last CPU, everything else (ceiling,
# herald, receiver) on the others. Skipped on one CPU or without taskset.
ncpu=$(nproc)
if [[ $ncpu -ge 2 ]] && command -v taskset >/dev/null; then
  others="0-$((ncpu - 2))"
  kill "${pids[@]}" 2>/dev/null || true
  stop_redis
  REDIS_CPUS=$((ncpu - 1)) start_redis "$work"
  r="127.0.0.1:$REDIS_PORT"
  taskset -c "$others" "$b" receiver -addr 127.0.0.1:0 >"$work/receiver2.out" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$work/receiver2.out" ] && break; sleep 0.1; done
  target="$(head -1 "$work/receiver2.out")"
  echo "== Redis on CPU $((ncpu - 1)), the rest on CPUs $others"
  taskset -c "$others" "$b" ceiling -target "$target" -n "$n" -workers 64 | sed 's/phase=ceiling/phase=ceiling-pinned/' | tee -a "$results"
  for e in 1000 10; do
    taskset -c "$others" "$b" throughput -redis "$r" -target "$target" -n "$n" -endpoints $e -workers "$workers" | sed 's/phase=throughput/phase=throughput-pinned/' | tee -a "$results"
  done
fi

python3 - "$results" <<'PY'
import sys
rows = []
for line in open(sys.argv[1]):
    if line.startswith("RESULT "):
        rows.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
c = next(r for r in rows if r["phase"] == "ceiling")
ceil = float(c["per_sec"])
print("\n== summary")
print(f"raw ceiling:            {ceil:,.0f} POST/s; CPU per POST: client {c['client_cpu_us_per_post']} us + receiver {c['receiver_cpu_us_per_post']} us")
for r in rows:
    if r["phase"] == "throughput":
        ps = float(r["per_sec"])
        print(f"herald {r['endpoints']:>4} endpoints:  {ps:,.0f} deliveries/s = {ps/ceil:.2f} of ceiling (target >= 0.5); enqueue {float(r['enqueue_per_sec']):,.0f}/s ({r['redis_cpu_us_per_enqueue']} us of Redis CPU each)")
        print(f"                        CPU per delivery: herald {r['herald_cpu_us_per_delivery']} us + Redis {r['redis_cpu_us_per_delivery']} us + receiver {r['receiver_cpu_us_per_delivery']} us")
    if r["phase"] == "latency-floor":
        print(f"plain POSTs at 1000/s:  p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (no queue: this machine's floor)")
    if r["phase"] == "latency":
        print(f"end-to-end at 1000/s:   p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (target p99 < 5 ms), {r['delivered']}/{r['n']} delivered")
    if r["phase"] == "ceiling-pinned":
        pc = float(r["per_sec"])
        print(f"\nwith Redis on a CPU of its own (the ceiling on the other CPUs: {pc:,.0f} POST/s):")
    if r["phase"] == "throughput-pinned":
        ps = float(r["per_sec"])
        print(f"herald {r['endpoints']:>4} endpoints:  {ps:,.0f} deliveries/s = {ps/pc:.2f} of that ceiling; CPU per delivery: herald {r['herald_cpu_us_per_delivery']} us + receiver {r['receiver_cpu_us_per_delivery']} us (+ Redis {r['redis_cpu_us_per_delivery']} us on its own CPU)")
    if r["phase"] == "rss":
        print(f"peak RSS, {int(r['waiting']):,} waiting: {r['peak_rss_mb']} MB (target < 150 MB); Redis used {r['redis_used_memory']}")
PY
