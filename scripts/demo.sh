#!/usr/bin/env bash
# The main job on a fresh machine: build berth, start berthd, load a busybox image made from
# Debian's busybox-static, run a container, list containers, stop the daemon. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "demo.sh: run as root" >&2; exit 1; }
bash scripts/deps.sh
cargo build --release --bins
bin=$PWD/target/release
root=$(mktemp -d /tmp/berth-demo.XXXXXX)
sock=$root/berth.sock
export BERTH_HOST=unix://$sock
"$bin/berthd" -H "unix://$sock" --data-root "$root/data" --exec-root "$root/run" 2>"$root/berthd.log" &
daemon=$!
cleanup() {
  "$bin/berth" rm -f demo-bg >/dev/null 2>&1 || true
  kill -TERM "$daemon" 2>/dev/null || true
  wait "$daemon" 2>/dev/null || true
  rm -rf "$root"
}
trap cleanup EXIT
for _ in $(seq 100); do [ -S "$sock" ] && break; sleep 0.1; done
echo "+ berth version"; "$bin/berth" version
scripts/mkbusybox.sh "$root/busybox.tar" >/dev/null
echo "+ berth load -i busybox.tar"; "$bin/berth" load -i "$root/busybox.tar"
echo "+ berth images"; "$bin/berth" images
echo "+ berth run --rm busybox echo hello"; "$bin/berth" run --rm busybox echo hello
echo "+ berth run -d --name demo-bg busybox sh -c 'echo hi from the background; sleep 30'"
"$bin/berth" run -d --name demo-bg busybox sh -c 'echo hi from the background; sleep 30' >/dev/null
sleep 0.5
echo "+ berth ps -a"; "$bin/berth" ps -a
echo "+ berth logs demo-bg"; "$bin/berth" logs demo-bg
echo "+ docker (the real CLI) against berthd: docker run --rm busybox uname -a"
DOCKER_HOST=unix://$sock docker run --rm busybox uname -a
echo "+ berth rm -f demo-bg"; "$bin/berth" rm -f demo-bg
