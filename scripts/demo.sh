#!/usr/bin/env bash
# The whole air-gap round trip on one machine, with nothing from the internet: install airgap
# (scripts/setup.sh: build in this checkout, nothing global), start two throwaway registries on 127.0.0.1 (a "connected" source holding
# generated scanner images, and an "internal" target), then key generate → bundle create (signed)
# → verify (airgap, and openssl + sha256sum) → inspect → import → the cluster configuration.
# Everything it starts or writes is removed on exit. Needs root only to install docker-registry and
# skopeo when they are missing (Debian).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD

step() { printf '\n==> %s\n' "$*"; }

need=()
for c in docker-registry skopeo openssl curl; do command -v "$c" >/dev/null || need+=("$c"); done
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing: ${need[*]} (run as root to install them with apt-get)" >&2; exit 1; }
  step "apt-get install docker-registry skopeo openssl curl"
  DEBIAN_FRONTEND=noninteractive apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-registry skopeo openssl curl
fi

step "build airgap in this checkout (scripts/setup.sh)"
bash scripts/setup.sh >/dev/null
airgap() { node "$ROOT/dist/bin/airgap.mjs" "$@"; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/airgap-demo.XXXXXX")
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do
    for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() { node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'; }
# Runs in this shell (not in $(...)), so the PID lands in PIDS for cleanup; the address is left
# in REGISTRY_ADDR.
start_registry() { # NAME
  local name=$1 port
  port=$(free_port)
  mkdir -p "$WORK/$name"
  cat >"$WORK/$name/config.yml" <<EOF
version: 0.1
log: { level: error, accesslog: { disabled: true } }
storage: { filesystem: { rootdirectory: $WORK/$name/storage }, delete: { enabled: true } }
http: { addr: "127.0.0.1:$port", secret: demo-$RANDOM }
EOF
  docker-registry serve "$WORK/$name/config.yml" >"$WORK/$name/log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/v2/" >/dev/null && break; sleep 0.1; done
  curl -sf "http://127.0.0.1:$port/v2/" >/dev/null || { echo "registry $name did not start:" >&2; cat "$WORK/$name/log" >&2; exit 1; }
  REGISTRY_ADDR="127.0.0.1:$port"
}

step "start a source registry and an internal registry on 127.0.0.1"
start_registry source
SRC=$REGISTRY_ADDR
start_registry internal
DST=$REGISTRY_ADDR
echo "source $SRC, internal $DST"

step "generate two scanner images of random layers and push them to the source"
node scripts/bench/gen-images.mjs --out "$WORK/gen" --images 2 --total-mib 60 --layers 3 --seed demo >/dev/null
for i in 0 1; do
  skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$WORK/gen:img$i" "docker://$SRC/cincproject/scanner-$i:1.0"
done

export COSIGN_PASSWORD=demo-password
step "airgap key generate"
airgap key generate --output-prefix "$WORK/cosign"

cat >"$WORK/bundle.config.yaml" <<EOF
apiVersion: cinc-airgap/v1
kind: Bundle
metadata: { name: cinc-secure-scanner-demo, version: 1.0.0 }
registries:
  - host: "$SRC"
    plainHTTP: true
images:
  - ref: $SRC/cincproject/scanner-0:1.0
  - ref: $SRC/cincproject/scanner-1:1.0
EOF

step "airgap bundle create --dry-run"
airgap bundle create -c "$WORK/bundle.config.yaml" -o "$WORK/scanner-bundle.tar" --cache "$WORK/cache" --dry-run
step "airgap bundle create (signed tar)"
airgap bundle create -c "$WORK/bundle.config.yaml" -o "$WORK/scanner-bundle.tar" --key "$WORK/cosign.key" --cache "$WORK/cache"

step "airgap bundle verify --key cosign.pub"
airgap bundle verify "$WORK/scanner-bundle.tar" --key "$WORK/cosign.pub"
step "the same with tools the isolated side already has: tar, openssl, sha256sum"
mkdir "$WORK/extracted" && tar -xf "$WORK/scanner-bundle.tar" -C "$WORK/extracted"
(cd "$WORK/extracted" && base64 -d SHA256SUMS.sig >"$WORK/s.der" &&
  openssl dgst -sha256 -verify "$WORK/cosign.pub" -signature "$WORK/s.der" SHA256SUMS &&
  sha256sum -c --quiet SHA256SUMS && echo "sha256sum: all files intact")

step "airgap bundle inspect"
airgap bundle inspect "$WORK/scanner-bundle.tar"

step "the airgap that travelled inside the bundle (tools/, verified above) checks it too, with Node alone"
node "$WORK/extracted/tools/airgap-"*.mjs bundle verify "$WORK/extracted" --key "$WORK/cosign.pub"

step "airgap bundle report (the review document; also -o report.html)"
airgap bundle report "$WORK/scanner-bundle.tar" --key "$WORK/cosign.pub" | head -24

cat >"$WORK/import.yaml" <<EOF
apiVersion: cinc-airgap/v1
kind: Import
registries:
  - host: "$DST"
    plainHTTP: true
EOF
step "airgap bundle import --registry $DST/scanner"
airgap bundle import "$WORK/scanner-bundle.tar" --key "$WORK/cosign.pub" --registry "$DST/scanner" \
  --config "$WORK/import.yaml" --out "$WORK/airgap-out"

step "digests in the internal registry equal the source's"
for i in 0 1; do
  a=$(skopeo inspect --raw --tls-verify=false "docker://$SRC/cincproject/scanner-$i:1.0" | sha256sum | cut -c1-64)
  b=$(skopeo inspect --raw --tls-verify=false "docker://$DST/scanner/cincproject/scanner-$i:1.0" | sha256sum | cut -c1-64)
  echo "scanner-$i: source sha256:$a, internal sha256:$b"
  [ "$a" = "$b" ] || { echo "digest changed" >&2; exit 1; }
done

step "cluster configuration written by import"
(cd "$WORK/airgap-out" && find . -type f | sort && echo && cat images.json)
echo
echo "demo finished: created, verified and imported a signed bundle; everything it started is being stopped"
