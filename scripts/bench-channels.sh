#!/usr/bin/env bash
# Measure the channel registry: create, get and tag-query throughput and p99 latency with 100,000
# channels in a real Redis, the same tag query at 10,000 and 100,000 channels, and the machine's
# raw Redis GET/MGET ceiling in the same run. Starts a throwaway redis-server on a free port (or
# uses $REDIS_URL), builds and runs scripts/benchchannels. Extra arguments go to the program,
# e.g. -channels 200000 -workers 16 -duration 5s.
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
bin=$(mktemp -d)
cleanup() { stop_redis; rm -rf "$bin"; }
trap cleanup EXIT

go build -o "$bin/benchchannels" ./scripts/benchchannels

if [[ -z "${REDIS_URL:-}" ]]; then
	start_redis "$bin"
fi

"$bin/benchchannels" -redis-url "$REDIS_URL" "$@"
