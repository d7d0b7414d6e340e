#!/usr/bin/env bash
# End-to-end demo of reconfd's main job on this machine: starts a real etcd on loopback,
# registers two backends, renders the example nginx resource from etc/reconfd with
# `reconfd once`, shows the file, removes a backend and renders again.
# Nothing outside a temporary directory is touched; etcd is stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
.ci/install-deps
cargo build --quiet --locked
bin=target/debug/reconfd

work=$(mktemp -d)
etcd_pid=""
cleanup() {
  # etcd dies of the SIGTERM (status 143); that must not become the demo's exit status.
  if [ -n "$etcd_pid" ]; then
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

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
for _ in $(seq 100); do
  etcdctl --endpoints "$endpoint" endpoint health >/dev/null 2>&1 && break
  sleep 0.1
done
etcdctl --endpoints "$endpoint" endpoint health >/dev/null

# The example tree, with dest moved into the temporary directory and no reload of a real nginx.
cp -r etc/reconfd "$work/conf"
mkdir -p "$work/out"
sed -i -e "s|^dest = .*|dest = \"$work/out/nginx.conf\"|" -e '/^reload_cmd/d' -e '/^owner/d' -e '/^group/d' \
  "$work/conf/conf.d/nginx.toml"
[ "$(id -u)" -eq 0 ] || sed -i '/^check_cmd/d' "$work/conf/conf.d/nginx.toml"  # nginx -t needs root

echo "== registering two backends in etcd at $endpoint"
etcdctl --endpoints "$endpoint" put /services/apache/10.0.0.6 10.0.0.6:8888 >/dev/null
etcdctl --endpoints "$endpoint" put /services/apache/10.0.0.7 10.0.0.7:7777 >/dev/null
"$bin" check --confdir "$work/conf"
"$bin" once --confdir "$work/conf" --endpoint "$endpoint"
echo "== $work/out/nginx.conf (upstream part)"
sed -n '/upstream/,/}/p' "$work/out/nginx.conf"

echo "== removing backend 10.0.0.6; what would change (--noop):"
etcdctl --endpoints "$endpoint" del /services/apache/10.0.0.6 >/dev/null
"$bin" once --noop --confdir "$work/conf" --endpoint "$endpoint"
"$bin" once --confdir "$work/conf" --endpoint "$endpoint"
echo "== after the second run"
sed -n '/upstream/,/}/p' "$work/out/nginx.conf"
