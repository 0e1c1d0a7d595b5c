#!/usr/bin/env bash
# Lints the OpenAPI document (openapi/openapi.json) with Redocly's CLI at a pinned version, with the
# rules of openapi/redocly.yaml; exits non-zero on any error. npx fetches the CLI from npm on first
# use (about 20 MB, a few seconds) and caches it. Needs node 20.19+ (or 22.12+) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
redocly_version=2.77.0
# Redocly CLI 2 runs on node 20.19+ or 22.12+; say so rather than fail with a stack trace.
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 22 || (a === 22 && b >= 12) || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "the OpenAPI lint needs node 20.19+ or 22.12+ (Redocly CLI $redocly_version); this is node $(node --version)" >&2
  exit 1
fi
# The CLI's banner about Node 20's end of life says nothing about the document: leave it out.
npx --yes "@redocly/cli@$redocly_version" lint --config openapi/redocly.yaml --format=stylish openapi/openapi.json 2> >(grep -v '[║╔╚]' >&2)
