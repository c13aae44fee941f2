#!/usr/bin/env bash
# The whole test suite, from a fresh Debian 12 machine (run as root; CI runs it with CI=true):
# system packages (only those missing), npm dependencies, build, lint + format check, type check,
# the real test servers, then every vitest test. Servers this script starts are stopped on exit.
# Exit code: vitest's when tests fail; otherwise 1 if build, lint or type check failed; else 0.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PACKAGES=(docker-registry skopeo apache2-utils nginx-light fcgiwrap git curl openssl zstd jq
  radosgw ceph-mon ceph-osd ceph-common python3-rados tinyproxy ruby time)

step() { printf '\n==> %s\n' "$*"; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "system packages present"
    return
  fi
  [ "$(id -u)" = 0 ] || { echo "missing packages (${missing[*]}); run as root to install them" >&2; exit 1; }
  step "apt-get install ${missing[*]}"
  # No service may start from a package's install script (nginx would take port 80): the tests
  # start their own servers. policy-rc.d is how Debian lets an installer say so.
  local policy=/usr/sbin/policy-rc.d added_policy=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && added_policy=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
  [ $added_policy = 1 ] && rm -f "$policy"
  return 0
}

check_node() {
  command -v node >/dev/null || { echo "Node.js 20 (>= 20.18) is required and not on PATH" >&2; exit 1; }
  node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=18)?0:1)' ||
    { echo "Node.js >= 20.18 is required, found $(node --version)" >&2; exit 1; }
}

step "system packages"
install_packages
check_node

step "npm dependencies"
if [ -f package-lock.json ]; then npm ci --no-audit --no-fund; else npm install --no-audit --no-fund; fi

checks=0
step "build"
npm run build || checks=1
step "lint and format (biome ci)"
# Plain output when nobody watches a terminal (CI logs).
colors=(); [ -t 1 ] || colors=(--colors=off)
npx biome ci "${colors[@]}" . || checks=1
step "type check"
npx tsc -p tsconfig.json --noEmit || checks=1

step "test servers"
started=0
if ! bash scripts/test-servers.sh status >/dev/null 2>&1; then
  started=1
  trap 'bash scripts/test-servers.sh stop' EXIT
  bash scripts/test-servers.sh start
else
  echo "already running; left running afterwards"
fi

step "vitest"
set +e
npx vitest run
rc=$?
set -e

if [ $rc -ne 0 ]; then
  echo "tests failed (exit $rc)" >&2
  exit $rc
fi
if [ $checks -ne 0 ]; then
  echo "tests passed, but build, lint or type check failed (see above)" >&2
  exit 1
fi
[ $started = 1 ] && echo "stopping test servers"
exit 0
