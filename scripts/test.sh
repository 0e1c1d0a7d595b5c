#!/usr/bin/env bash
# The test command (README): makes sure redis-server is installed, then runs gofmt, go vet,
# staticcheck (installed when missing) and the whole test suite with the race detector against real Redis.
# Tests start their own throwaway redis-server on free ports; set HERALD_TEST_REDIS_ADDR to use an
# existing one instead.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v redis-server >/dev/null 2>&1; then
  echo "==> redis-server not found: installing it"
  if command -v apt-get >/dev/null 2>&1; then
    sudo_cmd=""; [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq && $sudo_cmd apt-get install -y -qq redis-server >/dev/null
  elif command -v brew >/dev/null 2>&1; then
    brew install redis
  else
    echo "please install redis-server (Redis 7) and run again" >&2; exit 1
  fi
fi
if ! command -v go >/dev/null 2>&1; then
  echo "Go 1.26 or newer is needed: https://go.dev/dl/" >&2; exit 1
fi

echo "==> gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './node_modules/*'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "==> go vet"
go vet ./...

# staticcheck at the version CI uses (.ci/run), installed when missing. If it cannot be installed
# (no network), the run goes on and says loudly at the start and at the end that it was skipped.
staticcheck_version=v0.8.2
staticcheck_bin="$(command -v staticcheck || echo "$(go env GOPATH)/bin/staticcheck")"
if [ ! -x "$staticcheck_bin" ]; then
  echo "==> staticcheck not found: installing honnef.co/go/tools/cmd/staticcheck@$staticcheck_version"
  go install "honnef.co/go/tools/cmd/staticcheck@$staticcheck_version" || true
  staticcheck_bin="$(go env GOPATH)/bin/staticcheck"
fi
staticcheck_skipped=""
if [ -x "$staticcheck_bin" ]; then
  echo "==> staticcheck"
  "$staticcheck_bin" ./...
else
  staticcheck_skipped="yes"
  echo "!!! staticcheck SKIPPED: it is not installed and could not be installed (go install honnef.co/go/tools/cmd/staticcheck@$staticcheck_version)" >&2
fi

echo "==> go test -race"
go test -race -count=1 -timeout 12m "$@" ./...

if [ -n "$staticcheck_skipped" ]; then
  echo "!!! the tests passed, but staticcheck was SKIPPED (see above)" >&2
fi
