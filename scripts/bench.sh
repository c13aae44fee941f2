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
# Cases (--cases, comma separated, each NAME or NAME:RUNS; default: all of them, in this order):
#   tls-1g     1 GiB, 3 images x 4 layers, registries over TLS (private CA) with htpasswd auth
#   tls-4g     4 GiB, the same shape: memory must stay flat as data grows
#   tls-500    500 blobs (5 images x 98 small layers + config + manifest): per-item overhead
#   tls-5000   5,000 blobs (5 images x 998 small layers + config + manifest): per-blob time must stay flat
#   plain-1g   1 GiB over plain HTTP without auth (the loopback best case, for comparison)
# TLS is the path users have: airgap gets the CA with --ca-file and credentials from REGISTRY_AUTH_FILE
# (the machine's global CA variables are removed for it); skopeo gets --src-cert-dir/--dest-cert-dir
# and --authfile.
#
# Options:
#   --cases LIST    which cases (see above), e.g. --cases tls-1g:3,tls-4g:1,plain-1g:1
#   --runs N        runs per case when a case names none (default 3; medians and ranges are reported)
#   --no-peer-import LIST  cases (comma separated) whose import section runs airgap only, without the
#                   skopeo import and re-import (5,000 blobs through skopeo take a quarter of an hour
#                   on a loaded 2-core machine; the many-blob target is airgap's own time per blob)
#   --no-build      use dist/ as it is instead of running npm run build
#   --no-docs       print the tables only; do not rewrite docs/benchmarks.md
#   --keep          keep the work folder (registries are still stopped)
#   env BENCH_NODE_ARGS  extra node flags for the airgap runs only (profiling: "--cpu-prof --cpu-prof-dir=D")
#   env BENCH_WRAP  a command to start the airgap runs under (e.g. "strace -c -f -o FILE")
#
# Everything runs on 127.0.0.1 with docker-registry instances this script starts on ports 27000-27999
# (fresh storage each, so "empty registry" is true) and stops on exit by recorded PID. Image data is
# generated at run time: incompressible, deterministic (seeded) uncompressed layers. The load average
# is recorded with every run: the machine is shared, and the figures mean little without it.
set -euo pipefail

ARGS="$*"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
HERE=$ROOT/scripts/bench
# shellcheck source=servers/certs.sh
. "$ROOT/scripts/servers/certs.sh"
# BENCH_NODE_ARGS: extra node flags for the airgap runs only (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
read -r -a NODE_ARGS <<<"${BENCH_NODE_ARGS:-}"
# BENCH_WRAP: a command the airgap runs are started under (e.g. "strace -c -f -o /tmp/strace.txt").
read -r -a WRAP <<<"${BENCH_WRAP:-}"

SECTIONS=()
RUNS=${BENCH_RUNS:-3}
RUN=1
CASES_ARG="tls-1g,tls-4g,tls-500,tls-5000,plain-1g"
BUILD=1
DOCS=1
KEEP=0
NO_PEER_IMPORT=","
usage() { awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}"; }
while [ $# -gt 0 ]; do
  case $1 in
    create | verify | import) SECTIONS+=("$1") ;;
    all) SECTIONS=(create verify import) ;;
    --cases) CASES_ARG=$2; shift ;;
    --runs) RUNS=$2; shift ;;
    --no-peer-import) NO_PEER_IMPORT=",$2,"; shift ;;
    --no-build) BUILD=0 ;;
    --no-docs) DOCS=0 ;;
    --keep) KEEP=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "bench: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ ${#SECTIONS[@]} -gt 0 ] || SECTIONS=(create verify import)
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || { echo "bench: --runs '$RUNS' is not a positive integer" >&2; exit 2; }
has_section() { local s; for s in "${SECTIONS[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }

# case_shape NAME: sets TRANSPORT MB IMAGES LAYERS EVEN for a case, or fails.
case_shape() {
  EVEN=0
  case $1 in
    tls-1g) TRANSPORT=tls MB=1024 IMAGES=3 LAYERS=4 ;;
    tls-4g) TRANSPORT=tls MB=4096 IMAGES=3 LAYERS=4 ;;
    tls-500) TRANSPORT=tls MB=8 IMAGES=5 LAYERS=98 EVEN=1 ;;
    tls-5000) TRANSPORT=tls MB=80 IMAGES=5 LAYERS=998 EVEN=1 ;;
    plain-1g) TRANSPORT=plain MB=1024 IMAGES=3 LAYERS=4 ;;
    *) return 1 ;;
  esac
}
CASES=()
CASE_RUNS=()
IFS=, read -r -a _cases <<<"$CASES_ARG"
for c in "${_cases[@]}"; do
  name=${c%%:*}
  runs=$RUNS
  [ "$name" = "$c" ] || runs=${c#*:}
  case_shape "$name" || { echo "bench: unknown case '$name' (see --help)" >&2; exit 2; }
  [[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "bench: runs '$runs' of case $name is not a positive integer" >&2; exit 2; }
  CASES+=("$name")
  CASE_RUNS+=("$runs")
done

T0=$(date +%s)
log() { printf '[bench %4ss] %s\n' "$(($(date +%s) - T0))" "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

for t in docker-registry skopeo curl jq python3 sha256sum /usr/bin/time node openssl htpasswd; do
  command -v "$t" >/dev/null || die "missing $t (apt-get install docker-registry skopeo curl jq python3 time openssl apache2-utils)"
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

# --- TLS and credentials, as a site has them ------------------------------------------------------
# A private CA and a server certificate for 127.0.0.1 (scripts/servers/certs.sh), an htpasswd user,
# and one auth file (docker config format) that lists every registry this run starts.
PKI=$WORK/pki
make_certs "$PKI"
BENCH_USER=bench
BENCH_PASSWORD=$(head -c 18 /dev/urandom | base64 | tr -dc A-Za-z0-9)
htpasswd -Bbn "$BENCH_USER" "$BENCH_PASSWORD" >"$WORK/htpasswd" 2>/dev/null
AUTHFILE=$WORK/auth.json
echo '{"auths":{}}' >"$AUTHFILE"
chmod 600 "$AUTHFILE"
mkdir -p "$WORK/no-docker-config"
# airgap: trust only the CA it is given (--ca-file), credentials only from the auth file.
AIRGAP=(env -u NODE_EXTRA_CA_CERTS -u SSL_CERT_FILE -u SSL_CERT_DIR "REGISTRY_AUTH_FILE=$AUTHFILE"
  "DOCKER_CONFIG=$WORK/no-docker-config" "${WRAP[@]}" node "${NODE_ARGS[@]}" "$ROOT/dist/bin/airgap.mjs")

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

scheme() { if [ "$TRANSPORT" = tls ]; then echo https; else echo http; fi; }

# start_registry NAME: a docker-registry on a free port with empty storage, over TLS with htpasswd
# auth when TRANSPORT=tls; sets REG_ADDR.
start_registry() {
  local name=$1 dir=$WORK/reg-$1 port
  rm -rf "$dir"
  mkdir -p "$dir/storage"
  port=$(free_port)
  {
    cat <<EOF
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
    if [ "$TRANSPORT" = tls ]; then
      cat <<EOF
  tls:
    certificate: $PKI/server.crt
    key: $PKI/server.key
auth:
  htpasswd:
    realm: airgap-bench
    path: $WORK/htpasswd
EOF
    fi
  } >"$dir/config.yml"
  # setsid makes the registry its own process group, so stopping it cannot touch anything else.
  setsid docker-registry serve "$dir/config.yml" >"$dir/log" 2>&1 </dev/null &
  local pid=$!
  echo "$name $pid" >>"$REGISTRIES"
  local i code
  for i in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || { cat "$dir/log" >&2; die "registry $name exited"; }
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 --cacert "$PKI/ca.crt" \
      -u "$BENCH_USER:$BENCH_PASSWORD" "$(scheme)://127.0.0.1:$port/v2/" || true)
    if [ "$code" = 200 ]; then
      REG_ADDR=127.0.0.1:$port
      if [ "$TRANSPORT" = tls ]; then
        jq --arg h "$REG_ADDR" --arg a "$(printf '%s:%s' "$BENCH_USER" "$BENCH_PASSWORD" | base64 -w0)" \
          '.auths[$h] = {auth: $a}' "$AUTHFILE" >"$AUTHFILE.tmp" && mv "$AUTHFILE.tmp" "$AUTHFILE"
      fi
      return 0
    fi
    sleep 0.1
  done
  die "registry $name did not answer on 127.0.0.1:$port"
}

# Per-transport options. skopeo: trust and credentials for the source / destination side. airgap:
# --ca-file (credentials come from REGISTRY_AUTH_FILE), or plain HTTP for the plain case.
skopeo_src() {
  if [ "$TRANSPORT" = tls ]; then echo "--src-cert-dir $PKI/certs.d --authfile $AUTHFILE"; else echo "--src-tls-verify=false"; fi
}
skopeo_dst() {
  if [ "$TRANSPORT" = tls ]; then echo "--dest-cert-dir $PKI/certs.d --authfile $AUTHFILE"; else echo "--dest-tls-verify=false"; fi
}
create_trust() { if [ "$TRANSPORT" = tls ]; then echo "--ca-file $PKI/ca.crt"; fi; }
import_trust() { if [ "$TRANSPORT" = tls ]; then echo "--ca-file $PKI/ca.crt"; else echo "--plain-http"; fi; }
registry_entry() { # HOST: a registries: entry of a bundle config
  if [ "$TRANSPORT" = tls ]; then printf '  - host: "%s"\n' "$1"; else printf '  - host: "%s"\n    plainHTTP: true\n' "$1"; fi
}

# emit JSON-LINE: append one record to the results.
emit() { printf '%s\n' "$1" >>"$RESULTS"; }

# CPU time in clock ticks: the whole machine's busy time (all cores, /proc/stat), and that of the
# registries this script started (their own process and threads).
HZ=$(getconf CLK_TCK)
machine_busy_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
registry_ticks() {
  local total=0 name pid t
  if [ -f "$REGISTRIES" ]; then
    while read -r name pid; do
      t=$(awk '{ print $14 + $15 }' "/proc/$pid/stat" 2>/dev/null) || t=0
      total=$((total + ${t:-0}))
    done <"$REGISTRIES"
  fi
  echo "$total"
}

# measure ID PART BYTES CMD...: run CMD under /usr/bin/time, record wall seconds and peak RSS.
# Returns CMD's exit status; stdout/stderr go to $WORK/logs/ID.PART.RUN.{out,err}.
measure() {
  local id=$1 part=$2 bytes=$3
  shift 3
  mkdir -p "$WORK/logs"
  local base=$WORK/logs/$id.$part.$RUN rc=0
  # Start every measured command with no dirty pages pending, so one tool's writeback is not billed
  # to the next one (the page cache itself cannot be dropped here, and stays warm).
  sync
  local machine0 registries0
  machine0=$(machine_busy_ticks)
  registries0=$(registry_ticks)
  /usr/bin/time -f '%e %M %U %S' -o "$base.time" "$@" >"$base.out" 2>"$base.err" || rc=$?
  local machine_cpu registry_cpu
  machine_cpu=$(awk -v a="$machine0" -v b="$(machine_busy_ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  registry_cpu=$(awk -v a="$registries0" -v b="$(registry_ticks)" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')
  local secs rss user sys
  read -r secs rss user sys < <(tail -n 1 "$base.time")
  local err='""'
  [ $rc = 0 ] || err=$(tail -n 5 "$base.err" | jq -Rs .)
  emit "$(printf '{"type":"measure","id":"%s","run":%d,"part":"%s","seconds":%s,"rssKb":%s,"cpuSeconds":%s,"registryCpuSeconds":%s,"machineCpuSeconds":%s,"bytes":%s,"exit":%d,"error":%s}' \
    "$id" "$RUN" "$part" "$secs" "$rss" "$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.2f", u + s }')" "$registry_cpu" "$machine_cpu" "$bytes" "$rc" "$err")"
  if [ $rc = 0 ]; then
    log "  $id${part:+ [$part]}: ${secs}s (CPU user ${user}s + sys ${sys}s; registries ${registry_cpu}s; whole machine ${machine_cpu}s of $(awk -v s="$secs" -v n="$(nproc)" 'BEGIN { printf "%.2f", s * n }')s), peak RSS $((rss / 1024)) MiB"
  else
    log "  $id${part:+ [$part]}: FAILED (exit $rc): $(tail -n 3 "$base.err" | tr '\n' ' ')"
  fi
  return $rc
}

note() { # CASE SECTION TEXT
  emit "$(jq -cn --arg c "$1" --arg s "$2" --arg t "$3" '{type:"note",case:$c,section:$s,text:$t}')"
  log "note ($1 $2): $3"
}

# --- build -------------------------------------------------------------------------------------
BUILD_STATE="not rebuilt (--no-build)"
if [ "$BUILD" = 1 ]; then
  log "npm run build"
  npm run build >"$WORK/build.log" 2>&1 || { cat "$WORK/build.log" >&2; die "npm run build failed"; }
  BUILD_STATE="built"
fi
[ -f dist/bin/airgap.mjs ] || die "dist/bin/airgap.mjs missing: run npm run build"

# --- data ---------------------------------------------------------------------------------------
# prepare_source CASE: generate the case's images, push them to a fresh source registry, write the
# bundle config. Sets SRC, DATA_BYTES, BLOBS, NAMES (full references as airgap names them).
prepare_source() {
  local c=$1 dir=$WORK/$1 i
  mkdir -p "$dir"
  start_registry "src-$c"
  SRC=$REG_ADDR
  local even=()
  [ "$EVEN" = 1 ] && even=(--even)
  log "generating $MB MiB: $IMAGES images x $LAYERS layers (uncompressed, random, seeded) ${even[*]}"
  node "$HERE/gen-images.mjs" --out "$dir/gen" --images "$IMAGES" --layers "$LAYERS" "${even[@]}" \
    --total-mib "$MB" --seed "cinc-airgap-bench-$c" >"$dir/gen.json"
  DATA_BYTES=$(jq .totalBytes "$dir/gen.json")
  BLOBS=$((IMAGES * (LAYERS + 2)))
  log "seeding source registry $SRC ($TRANSPORT) through its storage folder"
  NAMES=()
  {
    echo "apiVersion: cinc-airgap/v1"
    echo "kind: Bundle"
    echo "metadata: { name: airgap-bench, version: 1.0.0 }"
    echo "registries:"
    registry_entry "$SRC"
    echo "images:"
  } >"$dir/bundle.config.yaml"
  # Setup, not measured: the blobs are hard-linked into the registry's filesystem storage (pushing
  # 5,000 blobs through the API took minutes on a loaded machine), then every manifest is read back
  # through the API over the case's transport and compared with what was generated.
  node "$HERE/seed-registry.mjs" --layout "$dir/gen" --storage "$WORK/reg-src-$c/storage" \
    --repo-prefix bench/ --tag v1 >"$dir/seed.json"
  for ((i = 0; i < IMAGES; i++)); do
    NAMES+=("$SRC/bench/img$i:v1")
    echo "  - ref: \"$SRC/bench/img$i:v1\"" >>"$dir/bundle.config.yaml"
    local want got
    want=$(jq -r ".images[$i].digest" "$dir/gen.json")
    got=$(curl -sf --cacert "$PKI/ca.crt" -u "$BENCH_USER:$BENCH_PASSWORD" \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "$(scheme)://$SRC/v2/bench/img$i/manifests/v1" | sha256sum | cut -d' ' -f1) || true
    [ "sha256:$got" = "$want" ] || die "the seeded source registry does not serve bench/img$i:v1 = $want"
  done
  rm -rf "$dir/gen"
  emit "$(jq -cn --arg c "$c" --arg t "$TRANSPORT" --argjson b "$DATA_BYTES" --argjson i "$IMAGES" \
    --argjson l "$LAYERS" --argjson n "$BLOBS" --argjson mb "$MB" --argjson even "$EVEN" \
    '{type:"data",case:$c,transport:$t,bytes:$b,images:$i,layers:$l,blobs:$n,mib:$mb,even:($even==1)}')"
}

# bundle_for CASE: a bundle folder of the case's data (the cold create's output when create ran).
bundle_for() {
  local c=$1 dir=$WORK/$1
  if [ ! -f "$dir/bundle/SHA256SUMS" ]; then
    log "making a bundle for this section (not measured)"
    # shellcheck disable=SC2046
    "${AIRGAP[@]}" bundle create -c "$dir/bundle.config.yaml" -o "$dir/bundle" --cache "$dir/cache" $(create_trust) \
      >"$dir/prep-create.log" 2>&1 || { cat "$dir/prep-create.log" >&2; return 1; }
  fi
  BUNDLE=$dir/bundle
}

# --- sections -----------------------------------------------------------------------------------
# Each section measures peer and airgap once per run; odd runs start with the peer, even runs with
# airgap, so whatever the first command leaves behind (warm server caches, writeback) favours neither.
peer_first() { [ $((RUN % 2)) = 1 ]; }

create_peer() {
  local c=$1 dir=$WORK/$1 i
  log "create ($c, run $RUN): skopeo copy docker:// -> oci: image by image"
  rm -rf "$dir/skopeo-oci"
  for ((i = 0; i < IMAGES; i++)); do
    # shellcheck disable=SC2046
    measure "x$c.create.skopeo" "img$i" "$DATA_BYTES" skopeo copy --all --preserve-digests \
      $(skopeo_src) "docker://${NAMES[$i]}" "oci:$dir/skopeo-oci:${NAMES[$i]}" || true
  done
  rm -rf "$dir/skopeo-oci"
}

create_airgap() {
  local c=$1 dir=$WORK/$1
  log "create ($c, run $RUN): airgap bundle create, cold cache"
  rm -rf "$dir/cache" "$dir/bundle"
  # shellcheck disable=SC2046
  measure "x$c.create.airgap.cold" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle create \
    -c "$dir/bundle.config.yaml" -o "$dir/bundle" --cache "$dir/cache" $(create_trust) || return 0
  log "create ($c, run $RUN): airgap bundle create, warm cache, new output folder"
  # shellcheck disable=SC2046
  measure "x$c.create.airgap.warm" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle create \
    -c "$dir/bundle.config.yaml" -o "$dir/bundle-warm" --cache "$dir/cache" $(create_trust) || true
  rm -rf "$dir/bundle-warm"
}

# registry_limit CASE: every blob of the case fetched from the source registry with curl over the same
# transport, 8 at a time, bodies discarded: how fast this registry serves on this machine, a ceiling
# for any client (no client-side hashing or writing). Then the same blobs with undici alone, hashed
# and written (scripts/bench/node-floor.mjs): what a single Node.js thread does with them.
registry_limit() {
  local c=$1 dir=$WORK/$1 i list=$WORK/$1/blob-urls
  if [ ! -f "$list" ]; then
    : >"$list"
    for ((i = 0; i < IMAGES; i++)); do
      curl -sf --cacert "$PKI/ca.crt" -u "$BENCH_USER:$BENCH_PASSWORD" \
        -H 'Accept: application/vnd.oci.image.manifest.v1+json' "$(scheme)://$SRC/v2/bench/img$i/manifests/v1" |
        jq -r --arg u "$(scheme)://$SRC/v2/bench/img$i/blobs/" '(.config.digest, .layers[].digest) | $u + .' >>"$list"
    done
  fi
  log "create ($c, run $RUN): the registry's own limit, every blob with curl, 8 at a time"
  measure "x$c.create.curl" "" "$DATA_BYTES" bash -c \
    'xargs -P 8 -n 1 curl -sf -o /dev/null --cacert "$1" -u "$2" <"$3"' _ "$PKI/ca.crt" "$BENCH_USER:$BENCH_PASSWORD" "$list" || true
  log "create ($c, run $RUN): a bare Node.js pull of the same blobs (undici, SHA-256, file), 4 at a time"
  local ca=()
  [ "$TRANSPORT" = tls ] && ca=(--ca "$PKI/ca.crt")
  measure "x$c.create.nodefloor" "" "$DATA_BYTES" node "$HERE/node-floor.mjs" --urls "$list" --out "$dir/node-floor" \
    "${ca[@]}" --user "$BENCH_USER" --password "$BENCH_PASSWORD" || true
  rm -rf "$dir/node-floor"
}

section_create() {
  if peer_first; then create_peer "$1"; create_airgap "$1"; else create_airgap "$1"; create_peer "$1"; fi
  registry_limit "$1"
}

# signed_bundle_for CASE: a signed bundle of the same content (warm cache, so cheap), once per case.
# Sets SIGNED (empty when a key or a signed bundle could not be made).
signed_bundle_for() {
  local c=$1 dir=$WORK/$1
  SIGNED=""
  if [ ! -f "$WORK/cosign.pub" ]; then
    (cd "$WORK" && COSIGN_PASSWORD=bench "${AIRGAP[@]}" key generate --output-prefix cosign) \
      >"$WORK/keygen.log" 2>&1 || true
  fi
  if [ ! -f "$dir/bundle-signed/SHA256SUMS" ]; then
    # shellcheck disable=SC2046
    [ -f "$WORK/cosign.key" ] && COSIGN_PASSWORD=bench "${AIRGAP[@]}" bundle create \
      -c "$dir/bundle.config.yaml" -o "$dir/bundle-signed" --cache "$dir/cache" --key "$WORK/cosign.key" \
      $(create_trust) >"$dir/signed-create.log" 2>&1 || { rm -rf "$dir/bundle-signed"; return 0; }
  fi
  SIGNED=$dir/bundle-signed
}

section_verify() {
  local c=$1
  bundle_for "$c" || { note "$c" verify "skipped: could not make a bundle"; return 0; }
  signed_bundle_for "$c"
  local target=${SIGNED:-$BUNDLE}
  [ -n "$SIGNED" ] || [ "$RUN" != 1 ] || note "$c" verify "no signed bundle (key generate or create --key failed); --key runs skipped"
  log "verify ($c, run $RUN): one unmeasured warm-up pass of each, then measured"
  (cd "$target" && sha256sum -c --quiet SHA256SUMS) >/dev/null 2>&1 || true
  "${AIRGAP[@]}" bundle verify "$target" >/dev/null 2>&1 || true
  verify_peer() {
    measure "x$c.verify.sha256sum" "" "$DATA_BYTES" bash -c 'cd "$1" && sha256sum -c --quiet SHA256SUMS' _ "$target" || true
  }
  verify_airgap() {
    measure "x$c.verify.airgap" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle verify "$target" || true
    if [ -n "$SIGNED" ]; then
      "${AIRGAP[@]}" bundle verify "$target" --key "$WORK/cosign.pub" >/dev/null 2>&1 || true
      measure "x$c.verify.airgap.key" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle verify "$target" \
        --key "$WORK/cosign.pub" || true
    fi
  }
  if peer_first; then verify_peer; verify_airgap; else verify_airgap; verify_peer; fi
}

section_import() {
  local c=$1 dir=$WORK/$1 i
  bundle_for "$c" || { note "$c" import "skipped: could not make a bundle"; return 0; }
  start_registry "dst-skopeo-$c"
  local dst_s=$REG_ADDR
  start_registry "dst-airgap-$c"
  local dst_a=$REG_ADDR
  local pass id
  import_peer() {
    log "import ($c, run $RUN, $pass): skopeo copy oci: -> docker:// image by image"
    for ((i = 0; i < IMAGES; i++)); do
      # shellcheck disable=SC2046
      measure "x$c.$id.skopeo" "img$i" "$DATA_BYTES" skopeo copy --all --preserve-digests \
        $(skopeo_dst) "oci:$BUNDLE:${NAMES[$i]}" "docker://$dst_s/bench-import/bench/img$i:v1" || true
    done
  }
  import_airgap() {
    log "import ($c, run $RUN, $pass): airgap bundle import"
    # shellcheck disable=SC2046
    measure "x$c.$id.airgap" "" "$DATA_BYTES" "${AIRGAP[@]}" bundle import "$BUNDLE" \
      --registry "$dst_a/bench-import" $(import_trust) --out "$dir/airgap-out" || true
  }
  local with_peer=1
  if [[ $NO_PEER_IMPORT == *",$c,"* ]]; then
    with_peer=0
    [ "$RUN" != 1 ] || note "$c" import "skopeo import and re-import not run for this case (--no-peer-import)"
  fi
  for pass in first again; do
    id=import
    [ $pass = again ] && id=reimport
    if [ $with_peer = 0 ]; then import_airgap
    elif peer_first; then import_peer; import_airgap; else import_airgap; import_peer; fi
  done
  # The numbers only count if both registries now serve the same manifests.
  local bad=0 want got_s got_a
  get_manifest() { # HOST IMAGE-NUMBER
    curl -s --cacert "$PKI/ca.crt" -u "$BENCH_USER:$BENCH_PASSWORD" \
      -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
      "$(scheme)://$1/v2/bench-import/bench/img$2/manifests/v1" | sha256sum | cut -d' ' -f1
  }
  for ((i = 0; i < IMAGES; i++)); do
    want=$(jq -r ".images[$i].digest" "$dir/gen.json")
    got_s=$(get_manifest "$dst_s" "$i")
    got_a=$(get_manifest "$dst_a" "$i")
    [ $with_peer = 0 ] || [ "sha256:$got_s" = "$want" ] || { bad=1; note "$c" import "run $RUN: the skopeo target lacks bench-import/bench/img$i:v1 = $want"; }
    [ "sha256:$got_a" = "$want" ] || { bad=1; note "$c" import "run $RUN: the airgap target lacks bench-import/bench/img$i:v1 = $want"; }
  done
  [ $bad = 0 ] && log "import ($c, run $RUN): the targets serve every manifest with the source digest"
  stop_registry "dst-skopeo-$c"
  stop_registry "dst-airgap-$c"
}

# --- run ----------------------------------------------------------------------------------------
for k in "${!CASES[@]}"; do
  c=${CASES[$k]}
  runs=${CASE_RUNS[$k]}
  case_shape "$c"
  log "=== case $c: $MB MiB, $IMAGES images x $LAYERS layers, $TRANSPORT, $runs run(s) ==="
  prepare_source "$c"
  for ((RUN = 1; RUN <= runs; RUN++)); do
    emit "$(jq -cn --arg c "$c" --argjson r "$RUN" --arg l "$(cut -d' ' -f1-3 /proc/loadavg)" \
      '{type:"load",case:$c,run:$r,load:$l}')"
    log "case $c, run $RUN: load average $(cut -d' ' -f1-3 /proc/loadavg)"
    has_section create && section_create "$c"
    has_section verify && section_verify "$c"
    has_section import && section_import "$c"
  done
  # Free the disk before the next case (--keep keeps the case's bundle and logs).
  stop_registry "src-$c"
  [ "$KEEP" = 1 ] || rm -rf "${WORK:?}/$c"
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
  '{date:$date,nproc:$nproc,cpu:$cpu,mem:$mem,kernel:$kernel,os:$os,node:$node,skopeo:$skopeo,
    registry:$registry,coreutils:$coreutils,airgap:$airgap,commit:$commit,dirty:($dirty|tonumber),
    build:$build,load:$load,sections:$sections,cmd:$cmd}' >"$META"

if [ "$DOCS" = 1 ]; then
  node "$HERE/report.mjs" --results "$RESULTS" --meta "$META" --write "$ROOT/docs/benchmarks.md"
  log "wrote docs/benchmarks.md"
else
  node "$HERE/report.mjs" --results "$RESULTS" --meta "$META"
fi
