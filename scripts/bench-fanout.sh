#!/usr/bin/env bash
# Fan one event out to many verified subscribers and print how long it takes, with the API's
# latency meanwhile, Redis's own round trip (PING) and busy time, and the machine's ceiling
# (redis-benchmark) first. Starts a throwaway redis-server on a free port (or uses $REDIS_URL), builds
# and runs scripts/benchfanout. Extra arguments go to the program, e.g. -subscribers 10000 -runs 3.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
bin=$(mktemp -d)
cleanup() { stop_redis; rm -rf "$bin"; }
trap cleanup EXIT

go build -o "$bin/benchfanout" ./scripts/benchfanout

if [[ -z "${REDIS_URL:-}" ]]; then
	start_redis "$bin"
	port=$REDIS_PORT
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
