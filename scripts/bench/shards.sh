#!/usr/bin/env bash
# Sharded import on this machine: one bundle imported by 1, 2 and 3 `--shard I/N` processes at once,
# each time into a fresh empty registry, with wall time, the CPU seconds airgap and the registry
# spent, and the load average. Two shapes: few big blobs (per-byte cost) and many small ones
# (per-blob cost). Figures for docs/scale.md.
#
#   bash scripts/bench/shards.sh [--mib 480] [--images 12] [--small-images 6] [--small-layers 100]
#
# Plain-HTTP docker-registry instances on free ports in 27000-27999 (fresh storage each), stopped on
# exit by PID. Needs docker-registry, skopeo, jq, python3 and a built dist/ (npm run build).
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
MIB=480 IMAGES=12 SMALL_IMAGES=6 SMALL_LAYERS=100
while [ $# -gt 0 ]; do
  case $1 in
    --mib) MIB=$2; shift ;;
    --images) IMAGES=$2; shift ;;
    --small-images) SMALL_IMAGES=$2; shift ;;
    --small-layers) SMALL_LAYERS=$2; shift ;;
    *) echo "shards.sh: unknown argument $1" >&2; exit 2 ;;
  esac
  shift
done
[ -f dist/bin/airgap.mjs ] || { echo "shards.sh: run npm run build first" >&2; exit 1; }
WORK=$(mktemp -d /tmp/airgap-shards-XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -- "-$p" 2>/dev/null || true; done
  rm -rf "$WORK"
}
trap cleanup EXIT

free_port() {
  python3 -c '
import random, socket
for p in random.sample(range(27000, 28000), 1000):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p)); print(p); break
    except OSError: pass
    finally: s.close()'
}

# start_registry NAME → REG_ADDR, REG_PID
start_registry() {
  local dir=$WORK/reg-$1 port
  mkdir -p "$dir/storage"
  port=$(free_port)
  cat >"$dir/config.yml" <<EOF
version: 0.1
log: { level: warn, accesslog: { disabled: true } }
storage:
  filesystem: { rootdirectory: $dir/storage }
  delete: { enabled: true }
  maintenance: { uploadpurging: { enabled: false } }
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)
EOF
  setsid docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 </dev/null &
  REG_PID=$!
  PIDS+=("$REG_PID")
  REG_ADDR=127.0.0.1:$port
  for _ in $(seq 100); do curl -fs "http://$REG_ADDR/v2/" >/dev/null && return; sleep 0.1; done
  echo "registry $1 did not start" >&2; exit 1
}

cpu_of() { # PID → user+system CPU seconds of the process
  awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$1/stat"
}

# make_bundle NAME IMAGES LAYERS MIB EVEN → BUNDLE
make_bundle() {
  local name=$1 dir=$WORK/$1 even=()
  mkdir -p "$dir"
  [ "$5" = 1 ] && even=(--even)
  node scripts/bench/gen-images.mjs --out "$dir/gen" --images "$2" --layers "$3" "${even[@]}" \
    --total-mib "$4" --seed "shards-$name" >"$dir/gen.json"
  start_registry "src-$name"
  printf 'apiVersion: cinc-airgap/v1\nkind: Bundle\nmetadata: { name: %s, version: 1.0.0 }\nregistries:\n  - { host: "%s", plainHTTP: true }\nimages:\n' \
    "$name" "$REG_ADDR" >"$dir/config.yaml"
  for ((i = 0; i < $2; i++)); do
    skopeo copy --quiet --preserve-digests --dest-tls-verify=false "oci:$dir/gen:img$i" \
      "docker://$REG_ADDR/bench/img$i:v1"
    echo "  - ref: \"$REG_ADDR/bench/img$i:v1\"" >>"$dir/config.yaml"
  done
  BUNDLE=$dir/bundle
  local t0 t1
  t0=$(date +%s.%N)
  node dist/bin/airgap.mjs bundle create -c "$dir/config.yaml" -o "$BUNDLE" --cache "$dir/cache" >/dev/null 2>&1
  t1=$(date +%s.%N)
  local bytes blobs
  bytes=$(jq .totals.bytes "$BUNDLE/bundle.json")
  blobs=$(jq .totals.blobs "$BUNDLE/bundle.json")
  t0v=$(date +%s.%N)
  node dist/bin/airgap.mjs bundle verify "$BUNDLE" >/dev/null 2>&1
  t1v=$(date +%s.%N)
  printf '%s: %d images, %d blobs, %.1f MiB; create (cold cache) %.2f s; verify %.2f s; load %s\n' \
    "$name" "$2" "$blobs" "$(echo "$bytes / 1048576" | bc -l)" "$(echo "$t1 - $t0" | bc -l)" \
    "$(echo "$t1v - $t0v" | bc -l)" "$(cut -d' ' -f1-3 /proc/loadavg)"
}

# sharded NAME N: N shards at once into a fresh registry
sharded() {
  local name=$1 n=$2 i t0 t1 cpu0 cpu1 pids=() cpu_airgap=0
  start_registry "dst-$name-$n"
  cpu0=$(cpu_of "$REG_PID")
  local load
  load=$(cut -d' ' -f1-3 /proc/loadavg)
  t0=$(date +%s.%N)
  for ((i = 0; i < n; i++)); do
    /usr/bin/time -f '%U %S' -o "$WORK/time-$name-$n-$i" node dist/bin/airgap.mjs bundle import "$BUNDLE" \
      --registry "$REG_ADDR/x" --plain-http --shard "$i/$n" --out "$WORK/out-$name-$n-$i" --json \
      >"$WORK/json-$name-$n-$i" 2>"$WORK/err-$name-$n-$i" &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p" || { cat "$WORK"/err-"$name"-"$n"-* >&2; exit 1; }; done
  t1=$(date +%s.%N)
  cpu1=$(cpu_of "$REG_PID")
  for ((i = 0; i < n; i++)); do
    cpu_airgap=$(echo "$cpu_airgap + $(awk '{ print $1 + $2 }' "$WORK/time-$name-$n-$i")" | bc -l)
  done
  printf '%s: %d shard(s): %.2f s wall; airgap CPU %.2f s; registry CPU %.2f s; uploaded %s blobs, %s MiB; load at start %s\n' \
    "$name" "$n" "$(echo "$t1 - $t0" | bc -l)" "$cpu_airgap" "$(echo "$cpu1 - $cpu0" | bc -l)" \
    "$(jq -s 'map(.stats.blobsUploaded) | add' "$WORK"/json-"$name"-"$n"-*)" \
    "$(jq -s 'map(.stats.bytesUploaded) | add / 1048576 | floor' "$WORK"/json-"$name"-"$n"-*)" "$load"
}

echo "machine: $(nproc) cores, $(node --version), airgap $(git rev-parse --short HEAD)"
make_bundle big "$IMAGES" 4 "$MIB" 0
for n in 1 2 3; do sharded big "$n"; done
make_bundle small "$SMALL_IMAGES" "$SMALL_LAYERS" $((SMALL_IMAGES * SMALL_LAYERS / 50 + 1)) 1
for n in 1 2 3; do sharded small "$n"; done
