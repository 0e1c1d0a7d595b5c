#!/usr/bin/env bash
# The test command (README): makes sure redis-server is installed, then runs gofmt, go vet,
# staticcheck (installed when missing), the OpenAPI document's lint (when node is there) and the whole
# test suite with the race detector against real Redis (with the npm library of receiver's
# cross-check installed by npm ci when node is there).
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

# The receiver's signatures are checked against the official npm standardwebhooks library
# (receiver/npm_test.go), installed here from its lock file; the configs' alert rules and dashboard
# queries are checked with promtool (configs/configs_test.go). Without node or promtool those tests
# skip, and this script says so at the end; .ci/run installs both and sets
# HERALD_TEST_REQUIRE_TOOLS=1, which makes a missing one a failure.
tools_skipped=()
npm_dir=receiver/testdata/npm
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  if [ ! -d "$npm_dir/node_modules/standardwebhooks" ]; then
    echo "==> npm ci in $npm_dir (the official standardwebhooks library)"
    (cd "$npm_dir" && npm ci --no-audit --no-fund --loglevel=error) || tools_skipped+=("the npm standardwebhooks check (npm ci failed in $npm_dir)")
  fi
else
  tools_skipped+=("the npm standardwebhooks check of receiver (node and npm are not installed)")
fi
if ! command -v promtool >/dev/null 2>&1; then
  tools_skipped+=("promtool check rules of configs/ (promtool is not installed: apt-get install prometheus)")
fi

# The OpenAPI document's lint: Redocly's CLI through npx, pinned in scripts/lint-openapi.sh (about
# 20 MB from npm on first use, a few seconds a run).
if command -v npx >/dev/null 2>&1; then
  echo "==> openapi lint (Redocly CLI)"
  bash scripts/lint-openapi.sh
elif [ -n "${HERALD_TEST_REQUIRE_TOOLS:-}" ]; then
  echo "npx is missing and HERALD_TEST_REQUIRE_TOOLS is set: the OpenAPI lint cannot run" >&2; exit 1
else
  tools_skipped+=("the OpenAPI lint (npx is not installed: node 20.19+ and npm run scripts/lint-openapi.sh)")
fi

echo "==> go test -race"
go test -race -count=1 -timeout 12m "$@" ./...

if [ -n "$staticcheck_skipped" ]; then
  echo "!!! the tests passed, but staticcheck was SKIPPED (see above)" >&2
fi
for skipped in ${tools_skipped[@]+"${tools_skipped[@]}"}; do
  echo "!!! the tests passed, but $skipped: SKIPPED" >&2
done
