# shellcheck shell=bash
# CNCF distribution 2.8 (Debian docker-registry). start_registry NAME PORT [tls] [htpasswd FILE] [mtls]
start_registry() {
  local name=$1 port=$2
  shift 2
  local tls=0 htpasswd="" mtls=0
  while [ $# -gt 0 ]; do
    case $1 in
      tls) tls=1; shift ;;
      mtls) tls=1; mtls=1; shift ;;
      htpasswd) htpasswd=$2; shift 2 ;;
      *) die "start_registry: unknown option $1" ;;
    esac
  done
  local dir=$STATE/$name
  mkdir -p "$dir/storage"
  {
    echo "version: 0.1"
    echo "log:"
    echo "  level: warn"
    echo "  accesslog:"
    echo "    disabled: true"
    echo "storage:"
    echo "  filesystem:"
    echo "    rootdirectory: $dir/storage"
    echo "  delete:"
    echo "    enabled: true"
    echo "  maintenance:"
    echo "    uploadpurging:"
    echo "      enabled: false"
    echo "http:"
    echo "  addr: 127.0.0.1:$port"
    echo "  secret: $(random_secret 24)"
    if [ "$tls" = 1 ]; then
      echo "  tls:"
      echo "    certificate: $STATE/certs/server.crt"
      echo "    key: $STATE/certs/server.key"
      if [ "$mtls" = 1 ]; then
        echo "    clientcas:"
        echo "      - $STATE/certs/ca.crt"
      fi
    fi
    if [ -n "$htpasswd" ]; then
      echo "auth:"
      echo "  htpasswd:"
      echo "    realm: airgap-test"
      echo "    path: $htpasswd"
    fi
  } >"$dir/config.yml"
  spawn "$name" "$STATE/logs/$name.log" docker-registry serve "$dir/config.yml"
}

wait_registry() { # NAME PORT PID tls|mtls|plain
  local scheme=http args=()
  case $4 in
    tls) scheme=https args=(--cacert "$STATE/certs/ca.crt") ;;
    mtls) scheme=https args=(--cacert "$STATE/certs/ca.crt" --cert "$STATE/certs/client.crt" --key "$STATE/certs/client.key") ;;
  esac
  wait_http "$scheme://127.0.0.1:$2/v2/" 20 "200 401" "$3" -- "${args[@]}" ||
    { tail -20 "$STATE/logs/$1.log" >&2; return 1; }
}
