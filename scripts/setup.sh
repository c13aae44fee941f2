#!/usr/bin/env bash
# Install airgap from this checkout, without root and without touching anything global: npm
# dependencies and the build, in this folder only. Run it as `node dist/bin/airgap.mjs`, or put the
# printed alias in your shell profile.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v node >/dev/null || { echo "Node.js >= 20.18 is required and not on PATH" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' ||
  { echo "Node.js >= 20.18 is required, found $(node --version)" >&2; exit 1; }

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
node dist/bin/airgap.mjs --version >/dev/null
echo "airgap built in $PWD/dist; run it with:"
echo "  alias airgap='node $PWD/dist/bin/airgap.mjs'"
