#!/usr/bin/env bash
# Install airgap from this checkout: npm dependencies, build, and the `airgap` command on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

command -v node >/dev/null || { echo "Node.js >= 20.18 is required and not on PATH" >&2; exit 1; }
node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' ||
  { echo "Node.js >= 20.18 is required, found $(node --version)" >&2; exit 1; }

if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi
npm run build
# A global symlink to this checkout: a rebuild is picked up without linking again.
npm link --no-audit --no-fund >/dev/null

if ! command -v airgap >/dev/null; then
  bin="$(npm prefix -g)/bin"
  echo "airgap was linked into $bin, which is not on PATH; add it: export PATH=\"$bin:\$PATH\"" >&2
  PATH="$bin:$PATH"
fi
echo "airgap installed: $(command -v airgap)"
airgap --help
