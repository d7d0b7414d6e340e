#!/usr/bin/env bash
# End-to-end demo of reconfd's main job, the daemon, on this machine: starts a real etcd on
# loopback and `reconfd run` on the example nginx resource (etc/reconfd), then
#   1. three backends register at once: the burst is batched into one render and one reload;
#   2. a backend leaves: the file changes live, one more reload;
#   3. SIGTERM: a clean stop (exit 0);
# and, as a second act, `reconfd once --noop` shows the diff a change would make, writing nothing.
# Every wait is bounded. Nothing outside a temporary directory is touched (the resource's dest
# is moved there; its reload_cmd counts reloads instead of signalling nginx); etcd and reconfd
# are stopped on exit. Needs only what `.ci/install-deps --demo` installs.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps --demo
cargo build --quiet --locked
bin=$PWD/target/debug/reconfd

work=$(mktemp -d)
etcd_pid=""
daemon_pid=""
cleanup() {
  # etcd dies of the SIGTERM (status 143); that must not become the demo's exit status.
  for pid in $daemon_pid $etcd_pid; do
    kill "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT

fail() {
  echo "DEMO FAILED: $*" >&2
  [ -f "$work/daemon.log" ] && sed 's/^/  daemon: /' "$work/daemon.log" >&2
  exit 1
}
# wait_until SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s, fails after SECONDS.
wait_until() {
  local secs=$1 what=$2
  shift 2
  local i
  for ((i = 0; i < secs * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "timed out after ${secs}s waiting for $what"
}
free_port() {
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
}
port=$(free_port); peer=$(free_port)
endpoint="http://127.0.0.1:$port"
etcd --name demo --data-dir "$work/etcd" \
  --listen-client-urls "$endpoint" --advertise-client-urls "$endpoint" \
  --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
  --initial-cluster "demo=http://127.0.0.1:$peer" --log-level warn --logger zap >"$work/etcd.log" 2>&1 &
etcd_pid=$!
export ETCDCTL_API=3
ctl() { etcdctl --endpoints "$endpoint" "$@" >/dev/null; }
wait_until 20 "etcd at $endpoint" ctl endpoint health

# The example tree, with the resource enabled under its .toml name, dest moved into the
# temporary directory, a reload_cmd that counts reloads, and a 1 s quiet period so a burst of
# registrations becomes one reload.
cp -r etc/reconfd "$work/conf"
mkdir -p "$work/out"
res="$work/conf/conf.d/nginx.toml"
mv "$work/conf/conf.d/nginx.toml.example" "$res"
printf '#!/bin/sh\necho reload >>"%s/reloads"\n' "$work" >"$work/reload.sh"
chmod 755 "$work/reload.sh"
sed -i -e "s|^dest = .*|dest = \"$work/out/nginx.conf\"|" -e "s|^reload_cmd = .*|reload_cmd = \"$work/reload.sh\"|" \
  -e '/^owner/d' -e '/^group/d' "$res"
printf 'debounce = "1s"\nmax_wait = "5s"\nreload_limit = "none"\n' >>"$res"
[ "$(id -u)" -eq 0 ] || sed -i '/^check_cmd/d' "$res" # nginx -t needs root
reloads() { [ -f "$work/reloads" ] && wc -l <"$work/reloads" || echo 0; }
servers() { grep -c '^ *server [0-9]' "$work/out/nginx.conf" 2>/dev/null || echo 0; }
upstream() { sed -n '/upstream/,/}/p' "$work/out/nginx.conf"; }
# For wait_until, which runs its command again on every poll.
servers_are() { [ "$(servers)" -eq "$1" ]; }
reloads_reach() { [ "$(reloads)" -ge "$1" ]; }

echo "== reconfd check"
"$bin" check --confdir "$work/conf"

echo "== reconfd run (the daemon), following etcd at $endpoint"
ctl put /services/apache/10.0.0.5 10.0.0.5:8080
"$bin" run --confdir "$work/conf" --endpoint "$endpoint" --log-target stderr >"$work/daemon.log" 2>&1 &
daemon_pid=$!
wait_until 30 "the daemon's first reconcile" grep -q "first reconcile done" "$work/daemon.log"
[ "$(servers)" -eq 1 ] || fail "expected 1 backend after start, found $(servers)"
base=$(reloads)
installs() { grep -c ": installed" "$work/daemon.log" || true; }
base_installs=$(installs)
echo "ready; $(servers) backend in $work/out/nginx.conf, $base reload(s) so far"

echo "== act 1: three backends register at once"
ctl put /services/apache/10.0.0.6 10.0.0.6:8888
ctl put /services/apache/10.0.0.7 10.0.0.7:7777
ctl put /services/apache/10.0.0.8 10.0.0.8:9999
wait_until 15 "the burst to be installed" servers_are 4
wait_until 15 "the reload" reloads_reach $((base + 1))
# One more quiet period: a second reload for the same burst would show up now.
sleep 1.5
[ "$(reloads)" -eq $((base + 1)) ] || fail "the burst caused $(($(reloads) - base)) reloads, not 1"
[ "$(installs)" -eq $((base_installs + 1)) ] || fail "the burst caused $(($(installs) - base_installs)) installs, not 1"
upstream
echo "-> 3 registrations, 1 install, 1 reload (daemon log:)"
grep -E "installed" "$work/daemon.log" | tail -n 1 | sed 's/^/   /'

echo "== act 2: backend 10.0.0.6 leaves"
before=$(reloads)
ctl del /services/apache/10.0.0.6
wait_until 15 "the removal to be installed" servers_are 3
wait_until 15 "the reload" reloads_reach $((before + 1))
upstream
echo "-> the file changed live; $(($(reloads) - base)) reloads since the daemon was ready"

echo "== act 3: SIGTERM stops the daemon cleanly"
kill -TERM "$daemon_pid"
status=0
for _ in $(seq 150); do kill -0 "$daemon_pid" 2>/dev/null || break; sleep 0.1; done
kill -0 "$daemon_pid" 2>/dev/null && fail "the daemon did not stop within 15 s"
wait "$daemon_pid" || status=$?
daemon_pid=""
[ "$status" -eq 0 ] || fail "the daemon exited with $status"
grep -q "stopping" "$work/daemon.log" || fail "no 'stopping' in the daemon's log"
echo "stopped, exit 0"

echo "== second act: a backend comes back; reconfd once --noop shows what would change"
ctl put /services/apache/10.0.0.6 10.0.0.6:8888
"$bin" once --noop --confdir "$work/conf" --endpoint "$endpoint"
[ "$(servers)" -eq 3 ] || fail "--noop changed the file"
echo "-> nothing written: $(servers) backends in the file"
echo "== demo OK"
