#!/usr/bin/env bash
# Chaos run (by hand, ~1-2 minutes): two herald processes on one Redis, a flaky receiver, kill -9 of
# one herald and of Redis mid-run; fails if any accepted notification is lost. Flags pass through,
# e.g. bash scripts/chaos.sh --events 1000 --subscribers 50
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p bin
go build -o bin/herald ./cmd/herald
go run ./scripts/chaos --herald ./bin/herald "$@"
