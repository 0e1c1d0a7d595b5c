#!/usr/bin/env bash
# Fan one event out to many verified subscribers and print how long it takes, with the API's
# latency meanwhile, Redis's own round trip (PING) and busy time, and the machine's ceiling
# (redis-benchmark) first. Starts a throwaway redis-server on a free port (or uses $REDIS_URL), builds
# and runs scripts/benchfanout. Extra arguments go to the program, e.g. -subscribers 10000 -runs 3.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
cleanup() {
	if [[ -n "${redis_pid:-}" ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
	rm -rf "$bin"
}
trap cleanup EXIT

go build -o "$bin/benchfanout" ./scripts/benchfanout

if [[ -z "${REDIS_URL:-}" ]]; then
	command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$bin" --loglevel warning &
	redis_pid=$!
	for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
	REDIS_URL="redis://127.0.0.1:$port/0"
fi

# The machine's own ceiling, measured now (the machine is shared): plain Redis round trips.
if [[ -n "${port:-}" ]] && command -v redis-benchmark >/dev/null; then
	echo "machine ceiling (redis-benchmark, 20000 requests each):"
	for c in 1 8; do
		printf '  %d client(s): ' "$c"
		redis-benchmark -p "$port" -q -n 20000 -c "$c" -t ping_mbulk,get --precision 2 2>/dev/null | tr '\r' '\n' | grep -E 'requests per second' | sed 's/^ *//' | paste -sd ';' -
	done
fi

"$bin/benchfanout" -redis-url "$REDIS_URL" "$@"
