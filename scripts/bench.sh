#!/usr/bin/env bash
# Side-by-side benchmark of airgap against the tools a site already has, on the same bytes, in one run.
#
#   bash scripts/bench.sh [create] [verify] [import] [options]      (no section = all three)
#
#   create   skopeo copy registry -> OCI layout (image by image)  vs  airgap bundle create (cold cache),
#            then airgap bundle create again with the warm cache into a new output folder
#   verify   sha256sum -c SHA256SUMS (coreutils, one core)  vs  airgap bundle verify (integrity only,
#            and with --key when a signed bundle can be made)
#   import   skopeo copy OCI layout -> empty registry (image by image)  vs  airgap bundle import into
#            another empty registry, then both again into the now-populated registries (re-import)
#
# Options:
#   --runs N        measure each step N times (default 3; medians and ranges are reported)
#   --scale N       multiply the data by N (default 1)
#   --mb N          total MiB of image data at scale 1 (default 990 = 3 images x 330 MiB; env BENCH_MB)
#   --images N      number of images (default 3);  --layers N  layers per image (default 4)
#   --no-double     skip the second pass at twice the data (the pass that checks memory stays flat)
#   --no-build      use dist/ as it is instead of running npm run build
#   --no-docs       print the table only; do not rewrite docs/benchmarks.md
#   --keep          keep the work folder (registries are still stopped)
#   env BENCH_NODE_ARGS  extra node flags for the airgap runs only (profiling: "--cpu-prof --cpu-prof-dir=D")
#
# Everything runs on 127.0.0.1 with docker-registry instances this script starts on ports 27000-27999
# (plain HTTP, fresh storage each, so "empty registry" is true) and stops on exit by recorded PID.
# Image data is generated at run time: incompressible, deterministic (seeded) uncompressed layers.
# A section whose airgap command is not implemented yet is skipped with a note.
set -euo pipefail

ARGS="$*"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HERE=$ROOT/scripts/bench
# BENCH_NODE_ARGS: extra node flags for the airgap runs only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
read -r -a NODE_ARGS <<<"${BENCH_NODE_ARGS:-}"
AIRGAP=(node "${NODE_ARGS[@]}" "$ROOT/dist/cli/main.js")

SECTIONS=()
RUNS=${BENCH_RUNS:-3}
RUN=1
SCALE=1
MB=${BENCH_MB:-990}
IMAGES=3
LAYERS=4
DOUBLE=1
BUILD=1
DOCS=1
KEEP=0
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
while [ $# -gt 0 ]; do
  case $1 in
    create | verify | import) SECTIONS+=("$1") ;;
    all) SECTIONS=(create verify import) ;;
    --runs) RUNS=$2; shift ;;
    --scale) SCALE=$2; shift ;;
    --mb) MB=$2; shift ;;
    --images) IMAGES=$2; shift ;;
    --layers) LAYERS=$2; shift ;;
    --no-double) DOUBLE=0 ;;
    --no-build) BUILD=0 ;;
    --no-docs) DOCS=0 ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(create verify import)
for n in "$RUNS" "$SCALE" "$MB" "$IMAGES" "$LAYERS"; do
  [[ $n =~ ^[1-9][0-9]*$ ]] || { echo "bench: '$n' is not a positive integer" >&2; exit 2; }
done
has_section() { local s; for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

T0=$(date +%s)
log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for t in docker-registry skopeo curl jq python3 sha256sum /usr/bin/time node; do
  command -v "$t" >/dev/null || die "missing $t (apt-get install docker-registry skopeo curl jq python3 time)"
done

LOAD_BEFORE=$(cut -d" " -f1-3 /proc/loadavg)
WORK=$(mktemp -d /tmp/airgap-bench.XXXXXX)
RESULTS=$WORK/results.jsonl
: >"$RESULTS"
# Registries this run started: "name pid" per line; only these are ever stopped.
REGISTRIES=$WORK/registries

stop_registry() { # NAME
  local name pid
  while read -r name pid; do
    [ "$name" = "$1" ] || continue
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local i
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$pid" 2>/dev/null || true
  done <"$REGISTRIES"
  grep -v "^$1 " "$REGISTRIES" >"$REGISTRIES.tmp" || true
  mv "$REGISTRIES.tmp" "$REGISTRIES"
  rm -rf "${WORK:?}/reg-$1"
}

cleanup() {
  local rc=$? name pid
  trap - EXIT INT TERM
  if [ -f "$REGISTRIES" ]; then
    while read -r name pid; do stop_registry "$name"; done < <(cat "$REGISTRIES")
  fi
  if [ "$KEEP" = 1 ]; then log "work folder kept: $WORK"; else rm -rf "$WORK"; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
: >"$REGISTRIES"

free_port() {
  python3 - <<'PY'
import random, socket
ports = list(range(27000, 28000))
random.shuffle(ports)
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    print(p)
    break
else:
    raise SystemExit("no free port in 27000-27999")
PY
}

# start_registry NAME: a docker-registry on a free port with empty storage; sets REG_ADDR.
start_registry() {
  local name=$1 dir=$WORK/reg-$1 port
  rm -rf "$dir"
  mkdir -p "$dir/storage"
  port=$(free_port)
  cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: 127.0.0.1:$port
  secret: $(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)
EOF
  # setsid makes the registry its own process group, so stopping it cannot touch anything else.
  setsid docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 </dev/null &
  local pid=$!
  echo "$name $pid" >>"$REGISTRIES"
  local i
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; die "registry $name exited"; }
    [ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "http://127.0.0.1:$port/v2/" || true)" = 200 ] && {
      REG_ADDR=127.0.0.1:$port
      return 0
    }
    sleep 0.1
  done
  die "registry $name did not answer on 127.0.0.1:$port"
}

# emit JSON-LINE: append one record to the results.
emit() { printf '%s\n' "$1" >>"$RESULTS"; }

# measure ID PART BYTES CMD...: run CMD under /usr/bin/time, record wall seconds and peak RSS.
# Returns CMD's exit status; stdout/stderr go to $WORK/logs/ID.PART.{out,err}.
measure() {
  local id=$1 part=$2 bytes=$3
  shift 3
  mkdir -p "$WORK/logs"
  local base=$WORK/logs/$id.$part rc=0
  # Start every measured command with no dirty pages pending, so one tool's writeback is not billed
  # to the next one (the page cache itself cannot be dropped here, and stays warm).
  sync
  /usr/bin/time -f '%e %M %U %S' -o "$base.time" "$@" >"$base.out" 2>"$base.err" || rc=$?
  local secs rss user sys
  read -r secs rss user sys < <(tail -n 1 "$base.time")
  local err='""'
  [ $rc = 0 ] || err=$(tail -n 5 "$base.err" | jq -Rs .)
  emit "$(printf '{"type":"measure","id":"%s","run":%d,"part":"%s","seconds":%s,"rssKb":%s,"cpuSeconds":%s,"bytes":%s,"exit":%d,"error":%s}' \
    "$id" "$RUN" "$part" "$secs" "$rss" "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$bytes" "$rc" "$err")"
  if [ $rc = 0 ]; then
    log "  $id${part:+ [$part]}: ${secs}s (CPU user ${user}s + sys ${sys}s), peak RSS $((rss / 1024)) MiB"
  else
    log "  $id${part:+ [$part]}: FAILED (exit $rc): $(tail -n 3 "$base.err" | tr '\n' ' ')"
  fi
  return $rc
}

note() { # SCALE_FACTOR SECTION TEXT
  emit "$(jq -cn --arg s "$2" --arg t "$3" --argjson f "$1" '{type:"note",factor:$f,section:$s,text:$t}')"
  log "note ($2): $3"
}

# implemented SUBCOMMAND ARGS...: false when this build of airgap does not have the command yet.
implemented() {
  local out
  out=$("${AIRGAP[@]}" bundle "$@" 2>&1 || true)
  if grep -qiE 'not available in this version|not implemented|ERR_MODULE_NOT_FOUND|Cannot find module|unknown command' <<<"$out"; then
    PROBE_MESSAGE=$(grep -m1 -iE 'not available|not implemented|Cannot find module|unknown command' <<<"$out" | cut -c1-200)
    return 1
  fi
  return 0
}

# --- build -------------------------------------------------------------------------------------
BUILD_STATE="not rebuilt (--no-build)"
if [ "$BUILD" = 1 ]; then
  log "npm run build"
  if npm run build >"$WORK/build.log" 2>&1; then
    BUILD_STATE="built"
  else
    # tsc still emits on type errors; a section whose command is missing is skipped below.
    [ -f dist/cli/main.js ] || { cat "$WORK/build.log" >&2; die "build failed and dist/cli/main.js is missing"; }
    BUILD_STATE="built with type errors ($(grep -c 'error TS' "$WORK/build.log" || true) tsc errors)"
    log "warning: npm run build reported errors; using what it emitted"
  fi
fi
[ -f dist/cli/main.js ] || die "dist/cli/main.js missing: run npm run build"

# --- data ---------------------------------------------------------------------------------------
# prepare_source F: generate MB*F MiB of images, push them to a fresh source registry, write the
# bundle config. Sets SRC, DATA_BYTES, NAMES (full references as airgap names them).
prepare_source() {
  local f=$1 dir=$WORK/s$1
  mkdir -p "$dir"
  start_registry "src$f"
  SRC=$REG_ADDR
  log "generating $((MB * f)) MiB: $IMAGES images x $LAYERS layers (uncompressed, random, seeded)"
  node "$HERE/gen-images.mjs" --out "$dir/gen" --images "$IMAGES" --layers "$LAYERS" \
    --total-mib $((MB * f)) --seed "cinc-airgap-bench-$f" >"$dir/gen.json"
  DATA_BYTES=$(jq .totalBytes "$dir/gen.json")
  log "pushing to source registry $SRC with skopeo"
  NAMES=()
  local i
  {
    echo "apiVersion: cinc-airgap/v1"
    echo "kind: Bundle"
    echo "metadata: { name: airgap-bench, version: 1.0.0 }"
    echo "registries:"
    echo "  - host: \"$SRC\""
    echo "    plainHTTP: true"
    echo "images:"
  } >"$dir/bundle.config.yaml"
  for ((i = 0; i < IMAGES; i++)); do
    skopeo copy --quiet --all --preserve-digests --dest-tls-verify=false \
      "oci:$dir/gen:img$i" "docker://$SRC/bench/img$i:v1" >/dev/null
    NAMES+=("$SRC/bench/img$i:v1")
    echo "  - ref: \"$SRC/bench/img$i:v1\"" >>"$dir/bundle.config.yaml"
  done
  rm -rf "$dir/gen"
  emit "$(jq -cn --argjson f "$f" --argjson b "$DATA_BYTES" --argjson i "$IMAGES" --argjson l "$LAYERS" \
    '{type:"data",factor:$f,bytes:$b,images:$i,layers:$l}')"
}

# bundle_for F: a bundle folder of the data at scale F (the cold create's output when create ran).
bundle_for() {
  local f=$1 dir=$WORK/s$1
  if [ ! -f "$dir/bundle/SHA256SUMS" ]; then
    log "making a bundle for this section (not measured)"
    "${AIRGAP[@]}" bundle create -c "$dir/bundle.config.yaml" -o "$dir/bundle" --cache "$dir/cache" \
      >"$dir/prep-create.log" 2>&1 || { cat "$dir/prep-create.log" >&2; return 1; }
  fi
  BUNDLE=$dir/bundle
}

# --- sections -----------------------------------------------------------------------------------
# Each section measures peer and airgap once per run; odd runs start with the peer, even runs with
# airgap, so whatever the first command leaves behind (warm server caches, writeback) favours neither.
peer_first() { [ $((RUN % 2)) = 1 ]; }

create_peer() {
  local f=$1 dir=$WORK/s$1 i
  log "create (scale $f, run $RUN): skopeo copy docker:// -> oci: image by image"
  rm -rf "$dir/skopeo-oci"
  for ((i = 0; i < IMAGES; i++)); do
    measure "x$f.create.skopeo" "img$i" "$DATA_BYTES" skopeo copy --all --preserve-digests \
      --src-tls-verify=false "docker://${NAMES[$i]}" "oci:$dir/skopeo-oci:${NAMES[$i]}" || true
  done
  rm -rf "$dir/skopeo-oci"
}

create_airgap() {
  local f=$1 dir=$WORK/s$1
  log "create (scale $f, run $RUN): airgap bundle create, cold cache"
  rm -rf "$dir/cache" "$dir/bundle"
  measure "x$f.create.airgap.cold" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle create \
    -c "$dir/bundle.config.yaml" -o "$dir/bundle" --cache "$dir/cache" || return 0
  log "create (scale $f, run $RUN): airgap bundle create, warm cache, new output folder"
  measure "x$f.create.airgap.warm" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle create \
    -c "$dir/bundle.config.yaml" -o "$dir/bundle-warm" --cache "$dir/cache" || true
  rm -rf "$dir/bundle-warm"
}

section_create() {
  if peer_first; then create_peer "$1"; create_airgap "$1"; else create_airgap "$1"; create_peer "$1"; fi
}

# signed_bundle_for F: a signed bundle of the same content (warm cache, so cheap), once per scale.
# Sets SIGNED (empty when a key or a signed bundle could not be made).
signed_bundle_for() {
  local f=$1 dir=$WORK/s$1
  SIGNED=""
  if [ ! -f "$WORK/cosign.pub" ]; then
    (cd "$WORK" && COSIGN_PASSWORD=bench "${AIRGAP[@]}" key generate --output-prefix cosign) \
      >"$WORK/keygen.log" 2>&1 || true
  fi
  if [ ! -f "$dir/bundle-signed/SHA256SUMS" ]; then
    [ -f "$WORK/cosign.key" ] && COSIGN_PASSWORD=bench "${AIRGAP[@]}" bundle create \
      -c "$dir/bundle.config.yaml" -o "$dir/bundle-signed" --cache "$dir/cache" --key "$WORK/cosign.key" \
      >"$dir/signed-create.log" 2>&1 || { rm -rf "$dir/bundle-signed"; return 0; }
  fi
  SIGNED=$dir/bundle-signed
}

section_verify() {
  local f=$1 dir=$WORK/s$1
  if ! implemented verify "$WORK/no-such-bundle"; then
    [ "$RUN" = 1 ] && note "$f" verify "skipped: airgap bundle verify is not implemented in this build ($PROBE_MESSAGE)"
    return 0
  fi
  bundle_for "$f" || { note "$f" verify "skipped: could not make a bundle"; return 0; }
  signed_bundle_for "$f"
  local target=${SIGNED:-$BUNDLE}
  [ -n "$SIGNED" ] || [ "$RUN" != 1 ] || note "$f" verify "no signed bundle (key generate or create --key failed); --key runs skipped"
  log "verify (scale $f, run $RUN): one unmeasured warm-up pass of each, then measured"
  (cd "$target" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 || true
  "${AIRGAP[@]}" bundle verify "$target" >/dev/null 2>&1 || true
  verify_peer() {
    measure "x$f.verify.sha256sum" "" "$DATA_BYTES" bash -c 'cd "$1" && sha256sum -c --quiet SHA256SUMS' _ "$target" || true
  }
  verify_airgap() {
    measure "x$f.verify.airgap" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle verify "$target" || true
    if [ -n "$SIGNED" ]; then
      "${AIRGAP[@]}" bundle verify "$target" --key "$WORK/cosign.pub" >/dev/null 2>&1 || true
      measure "x$f.verify.airgap.key" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle verify "$target" \
        --key "$WORK/cosign.pub" || true
    fi
  }
  if peer_first; then verify_peer; verify_airgap; else verify_airgap; verify_peer; fi
}

section_import() {
  local f=$1 dir=$WORK/s$1 i
  if ! implemented import "$WORK/no-such-bundle" --registry 127.0.0.1:9/probe --plain-http --out "$WORK/probe-out"; then
    [ "$RUN" = 1 ] && note "$f" import "skipped: airgap bundle import is not implemented in this build ($PROBE_MESSAGE)"
    return 0
  fi
  bundle_for "$f" || { note "$f" import "skipped: could not make a bundle"; return 0; }
  start_registry "dst-skopeo$f"
  local dst_s=$REG_ADDR
  start_registry "dst-airgap$f"
  local dst_a=$REG_ADDR
  printf 'apiVersion: cinc-airgap/v1\nkind: Import\nregistries:\n  - host: "%s"\n    plainHTTP: true\n' \
    "$dst_a" >"$dir/import.yaml"
  local pass id
  import_peer() {
    log "import (scale $f, run $RUN, $pass): skopeo copy oci: -> docker:// image by image"
    for ((i = 0; i < IMAGES; i++)); do
      measure "x$f.$id.skopeo" "img$i" "$DATA_BYTES" skopeo copy --all --preserve-digests \
        --dest-tls-verify=false "oci:$BUNDLE:${NAMES[$i]}" "docker://$dst_s/bench-import/bench/img$i:v1" || true
    done
  }
  import_airgap() {
    log "import (scale $f, run $RUN, $pass): airgap bundle import"
    measure "x$f.$id.airgap" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle import "$BUNDLE" \
      --registry "$dst_a/bench-import" --config "$dir/import.yaml" --out "$dir/airgap-out" || true
  }
  for pass in first again; do
    id=import
    [ $pass = again ] && id=reimport
    if peer_first; then import_peer; import_airgap; else import_airgap; import_peer; fi
  done
  # The numbers only count if both registries now serve the same manifests.
  local bad=0 want got_s got_a
  for ((i = 0; i < IMAGES; i++)); do
    want=$(jq -r ".images[$i].digest" "$dir/gen.json")
    got_s=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$dst_s/v2/bench-import/bench/img$i/manifests/v1" | sha256sum | cut -d' ' -f1)
    got_a=$(curl -s -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "http://$dst_a/v2/bench-import/bench/img$i/manifests/v1" | sha256sum | cut -d' ' -f1)
    [ "sha256:$got_s" = "$want" ] || { bad=1; note "$f" import "run $RUN: the skopeo target lacks bench-import/bench/img$i:v1 = $want"; }
    [ "sha256:$got_a" = "$want" ] || { bad=1; note "$f" import "run $RUN: the airgap target lacks bench-import/bench/img$i:v1 = $want"; }
  done
  [ $bad = 0 ] && log "import (scale $f, run $RUN): both targets serve every manifest with the source digest"
  stop_registry "dst-skopeo$f"
  stop_registry "dst-airgap$f"
}

# --- run ----------------------------------------------------------------------------------------
FACTORS=("$SCALE")
[ "$DOUBLE" = 1 ] && FACTORS+=($((SCALE * 2)))
for f in "${FACTORS[@]}"; do
  log "=== scale $f: $((MB * f)) MiB, $RUNS run(s) ==="
  prepare_source "$f"
  for ((RUN = 1; RUN <= RUNS; RUN++)); do
    has_section create && section_create "$f"
    has_section verify && section_verify "$f"
    has_section import && section_import "$f"
  done
  # Free the disk before the larger pass.
  stop_registry "src$f"
  rm -rf "${WORK:?}/s$f/cache" "${WORK:?}/s$f/bundle" "${WORK:?}/s$f/bundle-signed"
done

META=$WORK/meta.json
jq -n \
  --arg date "$(date -u +%Y-%m-%dT%H:%MZ)" \
  --arg nproc "$(nproc)" \
  --arg cpu "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')" \
  --arg mem "$(free -g | awk '/^Mem:/{print $2}') GB" \
  --arg kernel "$(uname -r)" \
  --arg os "$(. /etc/os-release && echo "$PRETTY_NAME")" \
  --arg node "$(node --version)" \
  --arg skopeo "$(skopeo --version | awk '{print $3}')" \
  --arg registry "$(docker-registry --version | awk '{print $3}')" \
  --arg coreutils "$(sha256sum --version | head -1 | awk '{print $NF}')" \
  --arg airgap "$("${AIRGAP[@]}" --version 2>/dev/null || echo '?')" \
  --arg commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')" \
  --arg dirty "$(git status --porcelain --untracked-files=no -- src 2>/dev/null | wc -l)" \
  --arg build "$BUILD_STATE" \
  --arg load "$LOAD_BEFORE -> $(cut -d" " -f1-3 /proc/loadavg)" \
  --arg sections "${SECTIONS[*]}" \
  --arg cmd "npm run bench${ARGS:+ -- $ARGS}" \
  --argjson runs "$RUNS" --argjson mb "$MB" --argjson scale "$SCALE" --argjson images "$IMAGES" --argjson layers "$LAYERS" \
  '{date:$date,nproc:$nproc,cpu:$cpu,mem:$mem,kernel:$kernel,os:$os,node:$node,skopeo:$skopeo,
    registry:$registry,coreutils:$coreutils,airgap:$airgap,commit:$commit,dirty:($dirty|tonumber),
    build:$build,load:$load,sections:$sections,cmd:$cmd,runs:$runs,mb:$mb,scale:$scale,images:$images,layers:$layers}' >"$META"

if [ "$DOCS" = 1 ]; then
  node "$HERE/report.mjs" --results "$RESULTS" --meta "$META" --write "$ROOT/docs/benchmarks.md"
  log "wrote docs/benchmarks.md"
else
  node "$HERE/report.mjs" --results "$RESULTS" --meta "$META"
fi
