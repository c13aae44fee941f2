# shellcheck shell=bash
# tinyproxy (Debian 1.11) as the HTTP proxy of the proxy tests.
# start_tinyproxy NAME PORT [auth USER PASS] [refuse-connect]
#   auth USER PASS    every request needs Proxy-Authorization: Basic USER:PASS (else 407)
#   refuse-connect    CONNECT is allowed only to port 1, so every tunnel is refused (403)
start_tinyproxy() {
  local name=$1 port=$2
  shift 2
  local user="" pass="" refuse=0
  while [ $# -gt 0 ]; do
    case $1 in
      auth) user=$2 pass=$3; shift 3 ;;
      refuse-connect) refuse=1; shift ;;
      *) die "start_tinyproxy: unknown option $1" ;;
    esac
  done
  local dir=$STATE/$name
  mkdir -p "$dir"
  {
    echo "Port $port"
    echo "Listen 127.0.0.1"
    echo "Timeout 60"
    echo "Allow 127.0.0.1"
    echo "MaxClients 100"
    echo "LogLevel Connect"
    echo "DisableViaHeader Yes"
    # Without any ConnectPort line tinyproxy tunnels to every port (the test servers use high ones).
    [ "$refuse" = 1 ] && echo "ConnectPort 1"
    [ -n "$user" ] && echo "BasicAuth $user $pass"
  } >"$dir/tinyproxy.conf"
  spawn "$name" "$STATE/logs/$name.log" tinyproxy -d -c "$dir/tinyproxy.conf"
}

wait_tinyproxy() { # NAME PORT PID EXPECTED_CODE
  # A direct (non-proxy) GET: tinyproxy answers 407 when it wants credentials, else 400.
  wait_http "http://127.0.0.1:$2/" 10 "$4" "$3" ||
    { tail -20 "$STATE/logs/$1.log" >&2; return 1; }
}
