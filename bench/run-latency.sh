#!/usr/bin/env bash
# Container start-to-exit latency, side by side in one run:
#   berth run --rm busybox true          (berth CLI → berthd)
#   docker run --rm busybox true         (docker CLI → berthd)
#   docker run --rm busybox true         (docker CLI → Debian's dockerd, docker.io)
#   podman run --rm busybox true         (if podman is installed: BENCH_PODMAN=1)
# Prints the median and p90 of N runs (default 30) and the ratios to dockerd. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-30}
bash scripts/deps.sh
cargo build --release --bins -q
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  umount -R "$work"/docker/data 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
scripts/mkbusybox.sh "$work/busybox.tar" >/dev/null

# berthd
"$bin/berthd" -H "unix://$work/berth.sock" --data-root "$work/berth/data" --exec-root "$work/berth/run" 2>"$work/berthd.log" &
pids+=($!)
# Debian's dockerd, on its own roots and without touching the host's network setup.
if ! command -v dockerd >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
fi
dockerd -H "unix://$work/docker.sock" --data-root "$work/docker/data" --exec-root "$work/docker/run" \
  --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false 2>"$work/dockerd.log" &
pids+=($!)
for s in berth docker; do
  for _ in $(seq 300); do [ -S "$work/$s.sock" ] && DOCKER_HOST=unix://$work/$s.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
  DOCKER_HOST=unix://$work/$s.sock docker load -q -i "$work/busybox.tar" >/dev/null
done

ms() { date +%s%N; }
measure() { # name, command...
  local name=$1; shift
  "$@" >/dev/null 2>&1 || { echo "$name: warm-up failed: $*" >&2; return 1; }
  local t=()
  for _ in $(seq "$N"); do
    local a; a=$(ms); "$@" >/dev/null; local b; b=$(ms)
    t+=($(( (b - a) / 1000 )))
  done
  printf '%s\n' "${t[@]}" | sort -n > "$work/$name.times"
  local med p90
  med=$(sed -n "$(( (N + 1) / 2 ))p" "$work/$name.times")
  p90=$(sed -n "$(( (N * 9 + 9) / 10 ))p" "$work/$name.times")
  echo "$name $med $p90"
}
{
  measure berth-cli:berthd env BERTH_HOST=unix://$work/berth.sock "$bin/berth" run --rm busybox true
  measure docker-cli:berthd env DOCKER_HOST=unix://$work/berth.sock docker run --rm busybox true
  measure docker-cli:dockerd env DOCKER_HOST=unix://$work/docker.sock docker run --rm --network none busybox true
  if [ "${BENCH_PODMAN:-0}" = 1 ] && command -v podman >/dev/null; then
    podman load -q -i "$work/busybox.tar" >/dev/null
    measure podman podman run --rm --network none busybox true
  fi
} > "$work/results"
base=$(awk '$1=="docker-cli:dockerd"{print $2}' "$work/results")
echo "N=$N runs each; microseconds; ratio = median / dockerd's median (lower is faster)"
printf '%-22s %10s %10s %8s\n' "client:daemon" median p90 ratio
while read -r name med p90; do
  printf '%-22s %10s %10s %8s\n' "$name" "$med" "$p90" "$(awk -v a="$med" -v b="$base" 'BEGIN{printf "%.2f", a/b}')"
done < "$work/results"
