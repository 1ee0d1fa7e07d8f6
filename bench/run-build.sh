#!/usr/bin/env bash
# Dockerfile builds, side by side in one run, for the same Dockerfile and context
#   FROM busybox / RUN / COPY of a 50 MB file / CMD:
#   berth build                           (berth CLI → berthd)
#   DOCKER_BUILDKIT=0 docker build        (docker CLI → Debian's dockerd, docker.io)
#   podman build                          (if podman is installed or installable)
# Reports the median of N runs (default 3) of a no-cache build and of a fully cached rebuild,
# with ratios to Docker's. Needs root; installs docker.io (and podman) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
bash scripts/deps.sh
command -v dockerd >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io >/dev/null
if [ "${BENCH_PODMAN:-1}" = 1 ] && ! command -v podman >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman >/dev/null 2>&1 || true
fi
cargo build --release --bins -q
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench-build.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  umount -R "$work"/docker/data 2>/dev/null || true
  if command -v podman >/dev/null; then podman --root "$work/podman" --runroot "$work/podman-run" rmi -af >/dev/null 2>&1 || true; fi
  umount -R "$work"/podman 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

scripts/mkbusybox.sh "$work/busybox.tar" >/dev/null
mkdir -p "$work/ctx"
head -c $((50 * 1024 * 1024)) /dev/urandom > "$work/ctx/big.bin"
cat > "$work/ctx/Dockerfile" <<'EOF'
FROM busybox
RUN echo built > /built.txt
COPY big.bin /data/big.bin
CMD ["cat", "/built.txt"]
EOF

"$bin/berthd" -H "unix://$work/berth.sock" --data-root "$work/berth/data" --exec-root "$work/berth/run" 2>"$work/berthd.log" &
pids+=($!)
dockerd -H "unix://$work/docker.sock" --data-root "$work/docker/data" --exec-root "$work/docker/run" \
  --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false 2>"$work/dockerd.log" &
pids+=($!)
for s in berth docker; do
  for _ in $(seq 300); do [ -S "$work/$s.sock" ] && DOCKER_HOST=unix://$work/$s.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
  DOCKER_HOST=unix://$work/$s.sock docker load -q -i "$work/busybox.tar" >/dev/null
done
have_podman=0
if command -v podman >/dev/null; then
  P="podman --root $work/podman --runroot $work/podman-run --storage-driver overlay"
  if $P load -q -i "$work/busybox.tar" >/dev/null 2>&1; then have_podman=1; fi
fi

ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
: > "$work/results"
measure() { # label, kind (nocache|cached), command...
  local label=$1 kind=$2; shift 2
  "$@" >/dev/null 2>&1 || { echo "$label: warm-up failed: $*" >&2; return 1; }
  local t=()
  for _ in $(seq "$N"); do
    local a b; a=$(ms); "$@" >/dev/null 2>&1; b=$(ms); t+=($(( (b - a) / 1000000 )))
  done
  echo "$label $kind $(printf '%s\n' "${t[@]}" | median)" >> "$work/results"
}
B="env BERTH_HOST=unix://$work/berth.sock $bin/berth"
D="env DOCKER_HOST=unix://$work/docker.sock DOCKER_BUILDKIT=0 docker"
measure berth nocache $B build --no-cache -t b:1 "$work/ctx"
measure berth cached $B build -t b:1 "$work/ctx"
measure docker nocache $D build --no-cache --network none -t b:1 "$work/ctx"
measure docker cached $D build --network none -t b:1 "$work/ctx"
if [ $have_podman = 1 ]; then
  measure podman nocache $P build --no-cache --network none -t b:1 "$work/ctx"
  measure podman cached $P build --network none -t b:1 "$work/ctx"
fi

echo "Dockerfile: FROM busybox, RUN, COPY of 50 MB, CMD; N=$N; median ms; ratio = / docker (lower is faster)"
printf '%-8s %10s %10s %8s %8s\n' builder no-cache cached ratio-nc ratio-c
dn=$(awk '$1=="docker" && $2=="nocache"{print $3}' "$work/results")
dc=$(awk '$1=="docker" && $2=="cached"{print $3}' "$work/results")
for who in berth docker podman; do
  n=$(awk -v w=$who '$1==w && $2=="nocache"{print $3}' "$work/results")
  c=$(awk -v w=$who '$1==w && $2=="cached"{print $3}' "$work/results")
  [ -n "$n" ] || continue
  printf '%-8s %10s %10s %8s %8s\n' "$who" "$n" "$c" \
    "$(awk -v a="$n" -v b="$dn" 'BEGIN{printf "%.2f", a/b}')" "$(awk -v a="$c" -v b="$dc" 'BEGIN{printf "%.2f", a/b}')"
done
