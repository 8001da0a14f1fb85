#!/usr/bin/env bash
# CI: the TypeScript client is in step with openapi.json and type-checks.
#   1. installs exactly what package-lock.json pins (npm ci; works from a clean clone);
#   2. regenerates nexus-api.d.ts from the current openapi.json into a temp file and fails if
#      the committed nexus-api.d.ts differs (fix: `make client`, then commit);
#   3. runs the strict type check (tsc --noEmit) over the types, src/, examples/, type-tests/.
# OPENAPI_JSON=FILE checks against another document (e.g. to see the drift check fail).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
spec=${OPENAPI_JSON:-$here/../../openapi.json}
[[ -f $spec ]] || { echo "check.sh: no OpenAPI document at $spec" >&2; exit 1; }
spec="$(cd "$(dirname "$spec")" && pwd)/$(basename "$spec")"
cd "$here"

command -v npm >/dev/null || { echo "check.sh: npm not found; the TypeScript client needs Node 20+" >&2; exit 1; }

echo "npm ci (node $(node --version), npm $(npm --version 2>/dev/null))"
npm ci --no-audit --no-fund --ignore-scripts --loglevel=error

generated=$(mktemp --suffix=.d.ts)
trap 'rm -f "$generated"' EXIT
npm run --silent openapi-ts -- "$spec" --output "$generated" >/dev/null
if ! diff -u --label "nexus-api.d.ts (committed)" --label "nexus-api.d.ts (from ${spec#"$here/"})" \
    nexus-api.d.ts "$generated"; then
  echo "clients/typescript/nexus-api.d.ts is stale: it no longer matches openapi.json." >&2
  echo "Run \`make client\` and commit clients/typescript/nexus-api.d.ts." >&2
  exit 1
fi
echo "nexus-api.d.ts matches openapi.json"

npm run --silent check
echo "tsc --noEmit: the client, the example and the type tests compile"
