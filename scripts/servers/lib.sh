# shellcheck shell=bash
# Shared helpers for scripts/test-servers.sh. Sourced, not executed.
# Expects STATE (absolute state folder) to be set by the caller.

log() { printf '[test-servers %5.1fs] %s\n' "$(elapsed)" "$*" >&2; }
die() { printf 'test-servers: %s\n' "$*" >&2; exit 1; }

T0=$(date +%s%N)
elapsed() {
  local ms=$((($(date +%s%N) - T0) / 1000000))
  printf '%d.%d' $((ms / 1000)) $((ms % 1000 / 100))
}

# N distinct ports in 28000-28999 that nothing on 127.0.0.1 holds right now.
pick_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
want = int(sys.argv[1])
ports = list(range(28000, 29000))
random.shuffle(ports)
found = []
for p in ports:
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
    except OSError:
        continue
    finally:
        s.close()
    found.append(p)
    if len(found) == want:
        break
if len(found) < want:
    sys.exit("no free ports in 28000-28999")
print(" ".join(map(str, found)))
PY
}

random_secret() { head -c 64 /dev/urandom | base64 | tr -dc 'A-Za-z0-9' | head -c "${1:-20}"; }

# Start time of a process in clock ticks since boot: together with the PID it names one process,
# so a stop long after a start never signals an unrelated process that reused the PID.
proc_start() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $20}'; }
# Process group of a process (procps may be absent on a minimal machine).
proc_pgrp() { sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | awk '{print $3}'; }

# spawn NAME LOGFILE CMD...: run CMD in a new session (its PID is its process group) and record it.
# Without job control the background child is not a group leader, so setsid execs in place and
# $! is the server's own PID.
spawn() {
  local name=$1 logfile=$2
  shift 2
  # 9>&-: the servers must not inherit (and so hold) the start/stop lock.
  setsid "$@" >>"$logfile" 2>&1 </dev/null 9>&- &
  local pid=$!
  # proc_start is read after exec; the fork-time start tick does not change across exec.
  echo "$name $pid $(proc_start "$pid")" >>"$STATE/pids"
  SPAWNED_PID=$pid
}

# wait_http URL TIMEOUT_S CODES PIDS -- [curl args]: until URL answers with one of CODES
# (space separated), failing early when one of PIDS dies.
wait_http() {
  local url=$1 timeout=$2 codes=$3 pids=$4
  shift 4
  [ "${1:-}" = "--" ] && shift
  local deadline=$(($(date +%s) + timeout)) code p
  while :; do
    for p in $pids; do
      kill -0 "$p" 2>/dev/null || { echo "process $p serving $url exited" >&2; return 1; }
    done
    code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true)
    case " $codes " in *" $code "*) return 0 ;; esac
    if [ "$(date +%s)" -ge "$deadline" ]; then
      echo "no answer from $url within ${timeout}s (last HTTP code: $code)" >&2
      return 1
    fi
    sleep 0.1
  done
}

# Stop every process recorded in $STATE/pids, newest first, with its process group.
stop_recorded() {
  [ -f "$STATE/pids" ] || return 0
  local name pid start groups=() g
  while read -r name pid start; do
    [ -n "${pid:-}" ] || continue
    if [ "$(proc_start "$pid")" != "$start" ]; then continue; fi
    # setsid made each server the leader of its own group; signal the group so workers
    # (nginx, fcgiwrap, radosgw threads' children) go too, and only that group.
    if [ "$(proc_pgrp "$pid")" = "$pid" ]; then g="-$pid"; else g="$pid"; fi
    kill -TERM -- "$g" 2>/dev/null && groups+=("$g") && echo "stopped $name ($pid)" >&2
  done < <(tac "$STATE/pids")
  # Everything here is throwaway: a short grace, then KILL (radosgw alone takes ~11 s to honour TERM).
  local deadline=$(($(date +%s) + 2))
  for g in "${groups[@]}"; do
    while kill -0 -- "$g" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do sleep 0.1; done
    kill -0 -- "$g" 2>/dev/null && kill -KILL -- "$g" 2>/dev/null
  done
  rm -f "$STATE/pids"
}

# True when every recorded process is still the one that was started.
all_alive() {
  [ -s "$STATE/pids" ] || return 1
  local name pid start
  while read -r name pid start; do
    [ "$(proc_start "$pid")" = "$start" ] || return 1
  done <"$STATE/pids"
}
