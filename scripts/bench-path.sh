#!/usr/bin/env bash
# Benchmarks the path users run: herald built as users build it and started as `herald serve`
# with its default flags, except --api-rate-limit 0 and the two that allow a loopback http
# receiver (--allow-http --allow-private-targets), on a fresh redis-server of its own; a channel
# and subscribers (rate_limit_per_minute 1,000,000, max_in_flight 64) made over the HTTP API and
# verified by the url_verification handshake; notify calls over 8 keep-alive connections; a Go
# receiver process that answers 200 and records each delivery's arrival and webhook-id.
#
# Per shape (events x subscribers: 2000x10, 200x100, 10000x2, 1x10000, then a steady 100 events/s
# x 10 for 10 s) it prints deliveries/s and their ratio to the raw ceiling measured just before
# (plain Go POSTs of a same-sized body to the same receiver over 64 keep-alive connections),
# e2e p50/p99 (notify's 202 -> arrival), herald's and Redis's CPU per delivery, Redis commands per
# delivery (INFO commandstats, reset between shapes) and whether every delivery arrived exactly
# once; then which top-level Redis calls herald makes (a pass with SLOWLOG at 0 µs). For the shapes
# sent as fast as possible, e2e percentiles measure how long the backlog takes to drain; only the
# steady shape measures latency. It exits non-zero when a shape is not exactly once.
#
#   scripts/bench-path.sh [-quick] [-shapes 200x100,steady] [other benchpath run flags]
#   PPROF=1 scripts/bench-path.sh      also profiles herald during 200x100 (needs --pprof-addr;
#                                      -pprof-shape picks another shape, 100x100 with -quick)
#
#   REPLICA=1 scripts/bench-path.sh    gives the Redis a replica and runs herald with
#                                      --redis-wait-replicas 1: the cost of waiting for it
#   CLUSTER=3 scripts/bench-path.sh    on a Redis Cluster of 3 masters (scripts/cluster.sh, free
#                                      ports) instead: herald runs with --redis-addrs and
#                                      --queue-shards ${SHARDS:-3}; Redis figures are summed over the
#                                      masters, each master's share of the CPU is printed, and the
#                                      by-caller pass is skipped
#
# PPROF_SECONDS (5) is the profile's length, PPROF_OUT (/tmp/herald-bench-path.pprof) its file.
# Everything listens on loopback and is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) cores (the figures depend on what else runs)"

source scripts/lib.sh
bench_workdir

go build -o "$work/herald" ./cmd/herald
go build -o "$work/benchpath" ./scripts/benchpath

if [[ -n "${CLUSTER:-}" ]]; then
	start_cluster "$work" "$CLUSTER"
	shards=${SHARDS:-$CLUSTER}
	redis_flags=(--redis-addrs "$CLUSTER_ADDRS" --queue-shards "$shards")
	bench_redis=(-redis "$CLUSTER_ADDRS" -queue-shards "$shards")
	redis_where="a Cluster of $CLUSTER masters on ports $CLUSTER_PORTS, $shards queue shards"
else
	start_redis "$work"
	redis_flags=(--redis-url "$REDIS_URL")
	bench_redis=(-redis "127.0.0.1:$REDIS_PORT")
	redis_where="port $REDIS_PORT"
	if [[ "${REPLICA:-}" == 1 ]]; then
		start_replica "$work"
		redis_flags+=(--redis-wait-replicas 1)
		redis_where+=" with a replica; herald waits for it (--redis-wait-replicas 1)"
	fi
fi

"$work/benchpath" receive -addr 127.0.0.1:0 >"$work/receiver.out" &
pids+=($!)
for _ in $(seq 100); do [[ -s "$work/receiver.out" ]] && break; sleep 0.05; done
receiver="$(head -1 "$work/receiver.out")"
[[ -n "$receiver" ]] || { echo "the receiver did not start" >&2; exit 1; }

herald_port=$(free_port)
profile=()
if [[ "${PPROF:-}" == 1 ]]; then
	pprof_port=$(free_port)
	export HERALD_PPROF_ADDR="127.0.0.1:$pprof_port" # ignored by a herald without --pprof-addr
	profile=(-pprof "http://127.0.0.1:$pprof_port" -pprof-out "${PPROF_OUT:-/tmp/herald-bench-path.pprof}" -pprof-seconds "${PPROF_SECONDS:-5}")
	rm -f "${PPROF_OUT:-/tmp/herald-bench-path.pprof}"
fi
"$work/herald" serve "${redis_flags[@]}" --addr "127.0.0.1:$herald_port" \
	--api-rate-limit 0 --allow-http --allow-private-targets >"$work/herald.log" 2>&1 &
herald_pid=$!
pids+=("$herald_pid")
for _ in $(seq 200); do curl -sf "http://127.0.0.1:$herald_port/readyz" >/dev/null && break; sleep 0.05; done
curl -sf "http://127.0.0.1:$herald_port/readyz" >/dev/null || { echo "herald did not become ready:" >&2; tail -20 "$work/herald.log" >&2; exit 1; }
echo "herald $("$work/herald" version | cut -d' ' -f2) pid $herald_pid on 127.0.0.1:$herald_port, Redis $(redis-server --version | grep -o 'v=[^ ]*') on $redis_where, receiver $receiver"

status=0
"$work/benchpath" run -herald "http://127.0.0.1:$herald_port" -herald-pid "$herald_pid" -receiver "$receiver" \
	"${bench_redis[@]}" "${profile[@]}" "$@" || status=$?
if ! kill -0 "$herald_pid" 2>/dev/null; then
	echo "herald exited during the bench; its log ends with:" >&2
	tail -20 "$work/herald.log" >&2
	status=1
fi
if [[ ${#profile[@]} -gt 0 ]]; then
	out="${PPROF_OUT:-/tmp/herald-bench-path.pprof}"
	if [[ -s "$out" ]]; then
		echo
		echo "== herald CPU profile during the profiled shape ($out)"
		go tool pprof -top -nodecount=40 "$work/herald" "$out" 2>/dev/null | head -50
		echo "== cumulative"
		go tool pprof -top -cum -nodecount=40 "$work/herald" "$out" 2>/dev/null | sed -n '/flat%/,$p' | head -42
	else
		echo "no profile was taken (benchpath says why above)" >&2
	fi
fi
exit "$status"
