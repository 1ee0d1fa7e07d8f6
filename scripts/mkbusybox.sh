#!/usr/bin/env bash
# Builds a busybox image as a docker-archive tar from Debian's busybox-static:
# FROM scratch + /bin/busybox and a symlink per applet, /etc/passwd and /etc/group.
# Usage: scripts/mkbusybox.sh OUT.tar [TAG]   (TAG defaults to busybox:latest)
set -euo pipefail
out=${1:?usage: mkbusybox.sh OUT.tar [TAG]}
case "$out" in /*) ;; *) out="$PWD/$out" ;; esac
tag=${2:-busybox:latest}
bb=/bin/busybox
[ -x "$bb" ] || { echo "mkbusybox: $bb not found (apt-get install busybox-static)" >&2; exit 1; }
if ! "$bb" --list >/dev/null 2>&1; then
  echo "mkbusybox: $bb is not a busybox with --list" >&2; exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
root=$work/rootfs
mkdir -p "$root"/{bin,etc,tmp,root,home,var,proc,sys,dev,usr/bin,usr/sbin,sbin}
chmod 1777 "$root/tmp"
cp "$bb" "$root/bin/busybox"
for a in $("$bb" --list); do
  [ "$a" = busybox ] && continue
  ln -sf busybox "$root/bin/$a"
done
cat > "$root/etc/passwd" <<'P'
root:x:0:0:root:/root:/bin/sh
daemon:x:1:1:daemon:/usr/sbin:/bin/false
nobody:x:65534:65534:nobody:/home:/bin/false
P
cat > "$root/etc/group" <<'G'
root:x:0:
daemon:x:1:
wheel:x:10:root
nogroup:x:65534:
G
mkdir -p "$work/img"
tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$root" -cf "$work/layer.tar" .
layer_sha=$(sha256sum "$work/layer.tar" | cut -d' ' -f1)
arch=$(dpkg --print-architecture 2>/dev/null || echo amd64)
created=1970-01-01T00:00:00Z
printf '{"architecture":"%s","os":"linux","created":"%s","config":{"Env":["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],"Cmd":["sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]},"history":[{"created":"%s","created_by":"berth: FROM scratch + Debian busybox-static"}]}' \
  "$arch" "$created" "$layer_sha" "$created" > "$work/config.json"
config_sha=$(sha256sum "$work/config.json" | cut -d' ' -f1)
mkdir -p "$work/img/$layer_sha"
mv "$work/layer.tar" "$work/img/$layer_sha/layer.tar"
mv "$work/config.json" "$work/img/$config_sha.json"
printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config_sha" "$tag" "$layer_sha" > "$work/img/manifest.json"
(cd "$work/img" && tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf "$out" manifest.json "$config_sha.json" "$layer_sha")
echo "sha256:$config_sha"
