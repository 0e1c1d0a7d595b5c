#!/usr/bin/env bash
# Measure the channel registry: create, get and tag-query throughput and p99 latency with 100,000
# channels in a real Redis, the same tag query at 10,000 and 100,000 channels, and the machine's
# raw Redis GET/MGET ceiling in the same run. Starts a throwaway redis-server on a free port (or
# uses $REDIS_URL), builds and runs scripts/benchchannels. Extra arguments go to the program,
# e.g. -channels 200000 -workers 16 -duration 5s.
set -euo pipefail
cd "$(dirname "$0")/.."

bin=$(mktemp -d)
cleanup() {
	if [[ -n "${redis_pid:-}" ]]; then kill "$redis_pid" 2>/dev/null || true; wait "$redis_pid" 2>/dev/null || true; fi
	rm -rf "$bin"
}
trap cleanup EXIT

go build -o "$bin/benchchannels" ./scripts/benchchannels

if [[ -z "${REDIS_URL:-}" ]]; then
	command -v redis-server >/dev/null || { echo "redis-server is not installed" >&2; exit 1; }
	port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
	redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$bin" --loglevel warning &
	redis_pid=$!
	for _ in $(seq 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.05; done
	REDIS_URL="redis://127.0.0.1:$port/0"
fi

"$bin/benchchannels" -redis-url "$REDIS_URL" "$@"
