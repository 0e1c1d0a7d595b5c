#!/usr/bin/env bash
# Proves herald's webhook signatures verify with the official Standard Webhooks library (npm
# package "standardwebhooks"), including during a secret rotation: the Go program
# notifier/internal/signdemo runs the real delivery engine (embedded store, loopback receiver)
# and prints the signed requests; scripts/verify-signature/verify.js verifies them.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root/scripts/verify-signature"
if [ ! -d node_modules/standardwebhooks ]; then
  npm install --no-audit --no-fund --loglevel=error >/dev/null
fi
cd "$root"
out="$(mktemp)"
trap 'rm -f "$out"' EXIT
go run ./notifier/internal/signdemo >"$out"
node scripts/verify-signature/verify.js <"$out"
