#!/usr/bin/env bash
# Measures the message relay end to end (message in -> channel server -> callback -> sessions
# server) with local receivers: round trips per second, then p50/p99 at a steady moderate rate.
# Uses a throwaway redis-server when one is installed (or --redis-url ... to point elsewhere),
# else the embedded store. Extra flags go to scripts/benchrelay (see -h there).
set -euo pipefail
cd "$(dirname "$0")/.."

args=("$@")
if [[ " $* " != *" --redis-url"* && " $* " != *" -redis-url"* ]] && command -v redis-server >/dev/null 2>&1; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo 6390)
  dir=$(mktemp -d)
  redis-server --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" --appendonly no --daemonize no --loglevel warning >/dev/null &
  redis_pid=$!
  trap 'kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; rm -rf "$dir"' EXIT
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  args+=(--redis-url "redis://127.0.0.1:$port/0")
fi
go run ./scripts/benchrelay "${args[@]}"
