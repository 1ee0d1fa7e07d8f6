#!/usr/bin/env bash
# Registry push/pull and blob serving, side by side in one run:
#   berthd  + berth registry serve        (docker CLI → berthd → berth's registry)
#   dockerd + Debian's docker-registry    (docker CLI → Debian's dockerd → distribution 2.8)
# The image is busybox plus one 200 MB random file, imported as one layer into each daemon;
# each round pushes it to a fresh registry, removes it, and pulls it back. dockerd gzips the
# layer on push (random bytes do not shrink); berthd pushes the stored blob as it is.
# Reports the median of N runs (default 3) of push, pull (after rmi) and the blob GET
# throughput of each registry (curl, from page cache, median of 5), with ratios to Docker's.
# Needs root; installs docker.io and docker-registry when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
SIZE_MB=${SIZE_MB:-200}
bash scripts/deps.sh
need=()
command -v dockerd >/dev/null || need+=(docker.io)
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v curl >/dev/null || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
cargo build --release --bins -q
bin=$PWD/target/release
work=$(mktemp -d /tmp/berth-bench-reg.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  umount -R "$work"/docker/data 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 300); do curl -fsS "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "not up: $1" >&2; return 1; }

# The image's root filesystem: busybox plus SIZE_MB of random bytes.
mkdir -p "$work/rootfs"
scripts/mkbusybox.sh "$work/busybox.tar" >/dev/null
tar -xf "$work/busybox.tar" -C "$work" manifest.json
layer=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["Layers"][0])' "$work/manifest.json")
tar -xf "$work/busybox.tar" -C "$work" "$layer"
tar -xf "$work/$layer" -C "$work/rootfs"
head -c "$((SIZE_MB * 1024 * 1024))" /dev/urandom > "$work/rootfs/random.bin"
tar -C "$work/rootfs" -cf "$work/rootfs.tar" .

# Registries: a fresh pair per push/pull round, so every push uploads and nothing is mounted
# from an earlier round.
start_registries() { # round
  local r=$1
  bport=$(free_port)
  "$bin/berth" registry serve --addr "127.0.0.1:$bport" --root "$work/breg$r" > "$work/breg$r.log" 2>&1 &
  pids+=($!)
  dport=$(free_port)
  cat > "$work/dreg$r.yml" <<EOF
version: 0.1
log: {level: error}
storage: {filesystem: {rootdirectory: $work/dreg$r}, delete: {enabled: true}}
http: {addr: 127.0.0.1:$dport}
EOF
  docker-registry serve "$work/dreg$r.yml" > "$work/dreg$r.log" 2>&1 &
  pids+=($!)
  wait_http "http://127.0.0.1:$bport/v2/"
  wait_http "http://127.0.0.1:$dport/v2/"
}

# Daemons.
"$bin/berthd" -H "unix://$work/berth.sock" --data-root "$work/berth/data" --exec-root "$work/berth/run" 2>"$work/berthd.log" &
pids+=($!)
dockerd -H "unix://$work/docker.sock" --data-root "$work/docker/data" --exec-root "$work/docker/run" \
  --pidfile "$work/docker.pid" --bridge none --iptables=false --ip6tables=false 2>"$work/dockerd.log" &
pids+=($!)
for s in berth docker; do
  for _ in $(seq 300); do [ -S "$work/$s.sock" ] && DOCKER_HOST=unix://$work/$s.sock docker version >/dev/null 2>&1 && break; sleep 0.1; done
done
B="env DOCKER_HOST=unix://$work/berth.sock DOCKER_CONFIG=$work/cfg docker"
D="env DOCKER_HOST=unix://$work/docker.sock DOCKER_CONFIG=$work/cfg docker"

ms() { date +%s%N; }
median() { sort -n | awk '{a[NR]=$1} END{print a[int((NR+1)/2)]}'; }
: > "$work/results"
round() { # label, docker-command-prefix, registry port -> appends "push pull" ms
  local cli=$1 port=$2 ref="127.0.0.1:$2/bench/big:1" a b p q
  $cli import "$work/rootfs.tar" "$ref" >/dev/null
  a=$(ms); $cli push "$ref" >/dev/null; b=$(ms); p=$(( (b - a) / 1000000 ))
  $cli rmi -f "$($cli image inspect -f '{{.Id}}' "$ref")" >/dev/null
  a=$(ms); $cli pull "$ref" >/dev/null; b=$(ms); q=$(( (b - a) / 1000000 ))
  $cli rmi -f "$($cli image inspect -f '{{.Id}}' "$ref")" >/dev/null
  echo "$p $q"
}
bp=(); bq=(); dp=(); dq=()
for i in $(seq "$N"); do
  start_registries "$i"
  read -r p q < <(round "$B" "$bport"); bp+=("$p"); bq+=("$q")
  read -r p q < <(round "$D" "$dport"); dp+=("$p"); dq+=("$q")
done
echo "berth push $(printf '%s\n' "${bp[@]}" | median)" >> "$work/results"
echo "berth pull $(printf '%s\n' "${bq[@]}" | median)" >> "$work/results"
echo "docker push $(printf '%s\n' "${dp[@]}" | median)" >> "$work/results"
echo "docker pull $(printf '%s\n' "${dq[@]}" | median)" >> "$work/results"

# Blob GET throughput: the big layer of each registry's copy, from page cache.
blob_speed() { # port, repo
  local port=$1 repo=$2 accept digest
  accept='application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json'
  digest=$(curl -fsS -H "Accept: $accept" "http://127.0.0.1:$port/v2/$repo/manifests/1" |
    python3 -c 'import json,sys; m=json.load(sys.stdin); print(max(m["layers"], key=lambda l: l["size"])["digest"])')
  curl -fsS -o /dev/null "http://127.0.0.1:$port/v2/$repo/blobs/$digest"
  for _ in 1 2 3 4 5; do
    curl -fsS -o /dev/null -w '%{speed_download}\n' "http://127.0.0.1:$port/v2/$repo/blobs/$digest"
  done | median
}
$B import "$work/rootfs.tar" "127.0.0.1:$bport/get/big:1" >/dev/null && $B push "127.0.0.1:$bport/get/big:1" >/dev/null
$D import "$work/rootfs.tar" "127.0.0.1:$dport/get/big:1" >/dev/null && $D push "127.0.0.1:$dport/get/big:1" >/dev/null
echo "berth get $(blob_speed "$bport" get/big)" >> "$work/results"
echo "docker get $(blob_speed "$dport" get/big)" >> "$work/results"

echo "image: busybox + ${SIZE_MB} MB random (one layer); N=$N; times in ms (median), GET in MB/s"
printf '%-8s %12s %12s %8s\n' what berth docker ratio
for what in push pull get; do
  b=$(awk -v w="$what" '$1=="berth" && $2==w {print $3}' "$work/results")
  d=$(awk -v w="$what" '$1=="docker" && $2==w {print $3}' "$work/results")
  if [ "$what" = get ]; then
    printf '%-8s %12.0f %12.0f %8s\n' "$what" "$(awk -v x="$b" 'BEGIN{print x/1000000}')" "$(awk -v x="$d" 'BEGIN{print x/1000000}')" \
      "$(awk -v a="$b" -v b="$d" 'BEGIN{printf "%.2f", a/b}')"
  else
    printf '%-8s %12s %12s %8s\n' "$what" "$b" "$d" "$(awk -v a="$b" -v b="$d" 'BEGIN{printf "%.2f", a/b}')"
  fi
done
echo "ratio: berth / docker (times: lower is faster; GET: higher is faster)"
