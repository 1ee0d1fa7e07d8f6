#!/usr/bin/env bash
# The main job on a fresh machine: build berth, start berthd and berth's registry, load a busybox
# image made from Debian's busybox-static, build an image from a Dockerfile, run containers, push
# the image to the registry and pull it back, stop everything. Needs root.
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
"$bin/berth" registry serve --addr 127.0.0.1:0 --root "$root/registry" > "$root/registry.out" 2>&1 &
registry=$!
cleanup() {
  "$bin/berth" rm -f demo-bg >/dev/null 2>&1 || true
  kill -TERM "$daemon" "$registry" 2>/dev/null || true
  wait "$daemon" "$registry" 2>/dev/null || true
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
mkdir -p "$root/ctx"
printf '%s\n' 'FROM busybox' 'ARG WHO=world' 'RUN echo "hello, $WHO, from a RUN step" > /greeting' \
  'COPY note.txt /note.txt' 'CMD ["sh", "-c", "cat /greeting /note.txt"]' > "$root/ctx/Dockerfile"
echo "copied from the build context" > "$root/ctx/note.txt"
echo "+ berth build -t demo/app:1 --build-arg WHO=berth ctx"; "$bin/berth" build -t demo/app:1 --build-arg WHO=berth "$root/ctx"
echo "+ berth run --rm demo/app:1"; "$bin/berth" run --rm demo/app:1
echo "+ berth build -q again (every step from the cache, same image ID)"
"$bin/berth" build -q -t demo/app:1 --build-arg WHO=berth "$root/ctx"
for _ in $(seq 100); do grep -q "listening on" "$root/registry.out" && break; sleep 0.1; done
reg=$(sed -n 's|.*listening on http://||p' "$root/registry.out")
echo "+ berth push $reg/demo/app:1"; "$bin/berth" tag demo/app:1 "$reg/demo/app:1"; "$bin/berth" push "$reg/demo/app:1"
echo "+ berth rmi, berth pull $reg/demo/app:1, and run it"
"$bin/berth" rmi -f "$("$bin/berth" image inspect -f '{{.Id}}' demo/app:1)" >/dev/null
"$bin/berth" pull "$reg/demo/app:1"
"$bin/berth" run --rm "$reg/demo/app:1"
