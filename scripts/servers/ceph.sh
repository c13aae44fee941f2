# shellcheck shell=bash
# Real S3: Ceph RADOS Gateway on a one-node throwaway cluster (1 mon, 1 bluestore OSD on a sparse
# file, radosgw with beast), no systemd, no cephx inside the cluster. All daemons run in the
# foreground (-f) under setsid so they are recorded and stopped like every other server.
# start_ceph MON_PORT RGW_PORT ACCESS_KEY SECRET_KEY
start_ceph() {
  local mon_port=$1 rgw_port=$2 ak=$3 sk=$4
  local d=$STATE/ceph
  local c=$d/ceph.conf setup_log=$STATE/logs/ceph-setup.log
  local fsid
  fsid=$(cat /proc/sys/kernel/random/uuid)
  mkdir -p "$d"/{run,mon/mon.a,osd,rgw}
  cat >"$c" <<CONF
[global]
fsid = $fsid
mon host = v2:127.0.0.1:$mon_port
public addr = 127.0.0.1
ms bind ipv6 = false
ms bind msgr1 = false
auth cluster required = none
auth service required = none
auth client required = none
# Daemons default some connections to 'secure' mode, which auth 'none' cannot provide: radosgw
# then fails with -13 and hangs for minutes. crc everywhere.
ms mon client mode = crc
ms client mode = crc
ms cluster mode = crc
ms service mode = crc
ms mon cluster mode = crc
ms mon service mode = crc
osd pool default size = 1
osd pool default min size = 1
mon allow pool size one = true
mon warn on pool no redundancy = false
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
run dir = $d/run
log file = $STATE/logs/ceph-\$name.log
admin socket = $d/run/\$name.asok
pid file = $d/run/\$name.pid
mon data = $d/mon/\$name
osd data = $d/osd/\$name
osd objectstore = bluestore
bluestore block path = $d/osd/\$name.block
bluestore block create = true
# sparse: only what is written takes disk space
bluestore block size = 42949672960
bluestore fsck on mount = false
osd memory target = 1073741824
paxos propose interval = 0.05
paxos min wait = 0.01
mon data avail warn = 2
mon data avail crit = 1
mon osd full ratio = 0.98
mon osd backfillfull ratio = 0.97
mon osd nearfull ratio = 0.96
[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:$rgw_port
rgw data = $d/rgw
rgw enable usage log = false
rgw lc debug interval = -1
rgw dns name = localhost
debug rgw = 1
CONF
  monmaptool --create --add a "v2:127.0.0.1:$mon_port" --fsid "$fsid" "$d/monmap" >>"$setup_log" 2>&1
  ceph-mon -c "$c" --mkfs -i a --monmap "$d/monmap" >>"$setup_log" 2>&1 || { tail "$setup_log" >&2; return 1; }
  spawn ceph-mon "$STATE/logs/ceph-mon.out" ceph-mon -f -c "$c" -i a
  local mon_pid=$SPAWNED_PID

  # One python process (Debian's python3-rados) registers the OSD and creates the radosgw pools up
  # front: far faster than one `ceph` CLI call per step, and the first bucket PUT then does not wait
  # for pool creation.
  local uuid osd_id
  uuid=$(cat /proc/sys/kernel/random/uuid)
  osd_id=$(/usr/bin/python3 - "$c" "$uuid" 2>>"$setup_log" <<'PY'
import json, sys, rados
conf, uuid = sys.argv[1], sys.argv[2]
c = rados.Rados(conffile=conf)
c.connect(timeout=30)
def mon(cmd):
    ret, out, err = c.mon_command(json.dumps(cmd), b"")
    if ret != 0:
        sys.exit(f"{cmd['prefix']}: {ret} {err}")
    return out
osd = json.loads(mon({"prefix": "osd new", "uuid": uuid, "format": "json"}))["osdid"]
for p in [".rgw.root", "default.rgw.log", "default.rgw.control", "default.rgw.meta",
          "default.rgw.buckets.index", "default.rgw.buckets.data", "default.rgw.buckets.non-ec"]:
    mon({"prefix": "osd pool create", "pool": p, "pg_num": 8, "pgp_num": 8})
    mon({"prefix": "osd pool application enable", "pool": p, "app": "rgw"})
c.shutdown()
print(osd)
PY
  ) || { tail "$setup_log" >&2; return 1; }
  mkdir -p "$d/osd/osd.$osd_id"
  ceph-osd -c "$c" -i "$osd_id" --mkfs --osd-uuid "$uuid" >>"$setup_log" 2>&1 || { tail "$setup_log" >&2; return 1; }
  spawn ceph-osd "$STATE/logs/ceph-osd.out" ceph-osd -f -c "$c" -i "$osd_id"
  local osd_pid=$SPAWNED_PID
  spawn radosgw "$STATE/logs/radosgw.out" radosgw -f -c "$c" -n client.rgw --client_mount_timeout 60
  local rgw_pid=$SPAWNED_PID
  local url=http://127.0.0.1:$rgw_port
  wait_http "$url/" 90 "200 403 404" "$mon_pid $osd_pid $rgw_pid" ||
    { tail -20 "$STATE/logs/ceph-client.rgw.log" >&2; return 1; }
  radosgw-admin -c "$c" user create --uid=airgap-test --display-name=airgap-test \
    --access-key="$ak" --secret-key="$sk" >>"$setup_log" 2>&1 || { tail "$setup_log" >&2; return 1; }
  # The first bucket operations wait on index shards and PG peering; pay that here, not in a test.
  local s3=(curl -s -o /dev/null -w '%{http_code}' --max-time 10 --aws-sigv4 "aws:amz:us-east-1:s3"
    --user "$ak:$sk" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD")
  local bucket=warmup-$(random_secret 8 | tr 'A-Z' 'a-z') i code=
  for i in $(seq 1 60); do
    code=$("${s3[@]}" -X PUT "$url/$bucket" || true)
    [ "$code" = 200 ] && break
    sleep 0.25
  done
  [ "$code" = 200 ] || { echo "radosgw never accepted a bucket (last HTTP code $code)" >&2; return 1; }
  "${s3[@]}" -X PUT --data-binary warm "$url/$bucket/object" >/dev/null
  "${s3[@]}" -X DELETE "$url/$bucket/object" >/dev/null
  "${s3[@]}" -X DELETE "$url/$bucket" >/dev/null
}
