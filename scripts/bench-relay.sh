#!/usr/bin/env bash
# Measures the message relay end to end (message in -> channel server -> callback -> sessions
# server) with local receivers: round trips per second, then p50/p99 at a steady moderate rate.
# Uses a throwaway redis-server when one is installed (or --redis-url ... to point elsewhere),
# else the embedded store. Extra flags go to scripts/benchrelay (see -h there).
set -euo pipefail
cd "$(dirname "$0")/.."

source scripts/lib.sh
args=("$@")
if [[ " $* " != *" --redis-url"* && " $* " != *" -redis-url"* ]] && command -v redis-server >/dev/null 2>&1; then
  dir=$(mktemp -d)
  trap 'stop_redis; rm -rf "$dir"' EXIT
  start_redis "$dir"
  args+=(--redis-url "$REDIS_URL")
fi
go run ./scripts/benchrelay "${args[@]}"
