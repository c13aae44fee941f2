#!/usr/bin/env bash
# Real servers for the integration tests, all on 127.0.0.1 (no systemd, nothing installed here).
#
#   bash scripts/test-servers.sh start    start everything (no-op when already running), write .test-state/env
#   bash scripts/test-servers.sh stop     stop exactly the processes `start` recorded
#   bash scripts/test-servers.sh env      print the variables as `export K=V` lines (for eval)
#   bash scripts/test-servers.sh status   show what runs
#
# Servers: three CNCF distribution registries (plain HTTP; TLS + bcrypt htpasswd; TLS requiring a
# client certificate), Ceph RADOS Gateway (S3), and one nginx serving git smart HTTP (with fcgiwrap
# and git http-backend), static files, an HTTP raw repository (WebDAV PUT under Basic auth), and
# two HTTPS fronts of RGW (S3 over TLS with the test CA; the same requiring a client certificate);
# two tinyproxy HTTP proxies (one requiring Basic proxy auth, one refusing every CONNECT).
# State, logs and throwaway certificates live in .test-state/ (git-ignored), fresh on every start.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
STATE=$ROOT/.test-state
HERE=$ROOT/scripts/servers
PATH=$PATH:/usr/sbin:/sbin
# Readiness probes must trust the test CA, not the machine-wide bundle some hosts export.
unset CURL_CA_BUNDLE SSL_CERT_FILE SSL_CERT_DIR

# shellcheck source=servers/lib.sh
. "$HERE/lib.sh"
# shellcheck source=servers/certs.sh
. "$HERE/certs.sh"
# shellcheck source=servers/registry.sh
. "$HERE/registry.sh"
# shellcheck source=servers/nginx.sh
. "$HERE/nginx.sh"
# shellcheck source=servers/ceph.sh
. "$HERE/ceph.sh"
# shellcheck source=servers/proxy.sh
. "$HERE/proxy.sh"

need_tools() {
  local missing=() t
  for t in docker-registry htpasswd nginx fcgiwrap git curl openssl python3 flock \
    ceph-mon ceph-osd radosgw radosgw-admin monmaptool tinyproxy; do
    command -v "$t" >/dev/null || missing+=("$t")
  done
  /usr/bin/python3 -c 'import rados' 2>/dev/null || missing+=("python3-rados")
  [ ${#missing[@]} -eq 0 ] ||
    die "missing: ${missing[*]} (install: apt-get install docker-registry apache2-utils nginx-light fcgiwrap git curl openssl radosgw ceph-mon ceph-osd ceph-common python3-rados tinyproxy)"
}

cmd_start() {
  if [ -f "$STATE/env" ] && all_alive; then
    log "already running ($STATE/env)"
    return 0
  fi
  need_tools
  # Whatever way a start fails, nothing it started stays behind (the Ceph job is waited for first,
  # so no daemon appears after the cleanup).
  trap 'rc=$?; if [ $rc -ne 0 ]; then wait; stop_recorded; fi; exit $rc' EXIT
  # A port picked as free can be taken before the server binds it; one more try with new ports.
  start_all || { log "retrying once with other ports"; start_all; } || die "start failed; logs in $STATE/logs"
  trap - EXIT
}

start_all() {
  # Leftovers of an earlier, partial start: stop what it recorded, then start clean.
  stop_recorded
  rm -rf "$STATE/env" "$STATE"/{certs,logs,registry-plain,registry-tls,registry-mtls,ceph,nginx,proxy-auth,proxy-refuse} \
    "$STATE"/{git-root,http-root,dav-root} "$STATE"/*.htpasswd
  mkdir -p "$STATE/logs"
  : >"$STATE/pids"

  local ports p_plain p_tls p_mtls p_mon p_rgw p_git p_http p_dav p_proxy p_refuse p_s3tls p_s3mtls
  ports=$(pick_ports 12)
  read -r p_plain p_tls p_mtls p_mon p_rgw p_git p_http p_dav p_proxy p_refuse p_s3tls p_s3mtls <<<"$ports"

  local reg_user=airgap reg_pass dav_user=uploader dav_pass s3_ak s3_sk proxy_user=proxyuser proxy_pass
  reg_pass=$(random_secret 20)
  proxy_pass=$(random_secret 20)
  dav_pass=$(random_secret 20)
  s3_ak=AK$(random_secret 18 | tr 'a-z' 'A-Z')
  s3_sk=$(random_secret 40)

  make_certs "$STATE/certs"
  htpasswd -Bbn "$reg_user" "$reg_pass" >"$STATE/registry.htpasswd" 2>/dev/null
  htpasswd -Bbn "$dav_user" "$dav_pass" >"$STATE/dav.htpasswd" 2>/dev/null
  log "certificates and passwords ready"

  # Ceph is the slow one: build it in the background while the others start.
  (start_ceph "$p_mon" "$p_rgw" "$s3_ak" "$s3_sk") >"$STATE/logs/ceph-start.out" 2>&1 &
  local ceph_job=$!

  local failed=0 pid_plain pid_tls pid_mtls
  start_registry registry-plain "$p_plain"
  pid_plain=$SPAWNED_PID
  start_registry registry-tls "$p_tls" tls htpasswd "$STATE/registry.htpasswd"
  pid_tls=$SPAWNED_PID
  start_registry registry-mtls "$p_mtls" mtls
  pid_mtls=$SPAWNED_PID
  start_nginx "$p_git" "$p_http" "$p_dav" "$STATE/dav.htpasswd" "$p_s3tls" "$p_s3mtls" "$p_rgw"
  local pid_proxy pid_refuse
  start_tinyproxy proxy-auth "$p_proxy" auth "$proxy_user" "$proxy_pass"
  pid_proxy=$SPAWNED_PID
  start_tinyproxy proxy-refuse "$p_refuse" refuse-connect
  pid_refuse=$SPAWNED_PID
  wait_registry registry-plain "$p_plain" "$pid_plain" plain || failed=1
  wait_registry registry-tls "$p_tls" "$pid_tls" tls || failed=1
  wait_registry registry-mtls "$p_mtls" "$pid_mtls" mtls || failed=1
  wait_nginx "$p_git" "$p_http" "$p_dav" || failed=1
  wait_tinyproxy proxy-auth "$p_proxy" "$pid_proxy" 407 || failed=1
  wait_tinyproxy proxy-refuse "$p_refuse" "$pid_refuse" 400 || failed=1
  [ $failed = 0 ] && log "registries and nginx answer"

  if wait "$ceph_job"; then
    log "ceph radosgw answers and accepts buckets"
    if wait_s3_tls "$p_s3tls" "$p_s3mtls"; then log "S3 over TLS and mTLS (nginx) answer"; else failed=1; fi
  else
    cat "$STATE/logs/ceph-start.out" >&2
    failed=1
  fi
  if [ $failed != 0 ]; then
    stop_recorded
    return 1
  fi

  local c=$STATE/certs
  cat >"$STATE/env.tmp" <<ENV
AIRGAP_TEST_STATE=$STATE
AIRGAP_TEST_REGISTRY_PLAIN=127.0.0.1:$p_plain
AIRGAP_TEST_REGISTRY_TLS=127.0.0.1:$p_tls
AIRGAP_TEST_REGISTRY_MTLS=127.0.0.1:$p_mtls
AIRGAP_TEST_REGISTRY_USER=$reg_user
AIRGAP_TEST_REGISTRY_PASSWORD=$reg_pass
AIRGAP_TEST_REGISTRY_TLS_STORAGE=$STATE/registry-tls/storage
AIRGAP_TEST_CA=$c/ca.crt
AIRGAP_TEST_CA_BUNDLE=$c/bundle.crt
AIRGAP_TEST_CLIENT_CERT=$c/client.crt
AIRGAP_TEST_CLIENT_KEY=$c/client.key
AIRGAP_TEST_S3_ENDPOINT=http://127.0.0.1:$p_rgw
AIRGAP_TEST_S3_TLS_ENDPOINT=https://127.0.0.1:$p_s3tls
AIRGAP_TEST_S3_MTLS_ENDPOINT=https://127.0.0.1:$p_s3mtls
AWS_ACCESS_KEY_ID=$s3_ak
AWS_SECRET_ACCESS_KEY=$s3_sk
AWS_REGION=us-east-1
AIRGAP_TEST_GIT_ROOT=$STATE/git-root
AIRGAP_TEST_GIT_URL=http://127.0.0.1:$p_git
AIRGAP_TEST_HTTP_ROOT=$STATE/http-root
AIRGAP_TEST_HTTP_URL=http://127.0.0.1:$p_http
AIRGAP_TEST_DAV_URL=http://127.0.0.1:$p_dav
AIRGAP_TEST_DAV_USER=$dav_user
AIRGAP_TEST_DAV_PASSWORD=$dav_pass
AIRGAP_TEST_PROXY_URL=http://$proxy_user:$proxy_pass@127.0.0.1:$p_proxy
AIRGAP_TEST_PROXY_REFUSING=http://127.0.0.1:$p_refuse
ENV
  mv "$STATE/env.tmp" "$STATE/env"
  log "all servers up; variables in $STATE/env"
}

cmd_stop() {
  rm -f "$STATE/env"
  stop_recorded
}

cmd_env() {
  [ -f "$STATE/env" ] || die "not running: bash scripts/test-servers.sh start"
  local line
  while IFS= read -r line; do
    [ -n "$line" ] && printf 'export %s=%q\n' "${line%%=*}" "${line#*=}"
  done <"$STATE/env"
}

cmd_status() {
  [ -f "$STATE/pids" ] || { echo "not running"; return 1; }
  local name pid start rc=0
  while read -r name pid start; do
    if [ "$(proc_start "$pid")" = "$start" ]; then echo "up    $name ($pid)"; else echo "DOWN  $name ($pid)"; rc=1; fi
  done <"$STATE/pids"
  return $rc
}

mkdir -p "$STATE"
# Several shells may start or stop at once (parallel test runs): one at a time.
exec 9>"$STATE/.lock"
case "${1:-}" in
  start) flock 9 && cmd_start ;;
  stop) flock 9 && cmd_stop ;;
  env) cmd_env ;;
  status) cmd_status ;;
  *) echo "usage: $0 start|stop|env|status" >&2; exit 2 ;;
esac
