#!/usr/bin/env bash
# Installs what berth needs to build and test on a fresh Debian machine (run as root).
set -euo pipefail
need=()
command -v pkg-config >/dev/null || need+=(pkg-config)
[ -e /usr/include/seccomp.h ] || need+=(libseccomp-dev)
[ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || need+=(busybox-static)
command -v tar >/dev/null || need+=(tar)
# Registry tests: skopeo as an outside client, htpasswd for basic-auth files.
command -v skopeo >/dev/null || need+=(skopeo)
command -v htpasswd >/dev/null || need+=(apache2-utils)
command -v curl >/dev/null || need+=(curl)
# The registry client's tests run against Debian's docker-registry (distribution 2.8).
command -v docker-registry >/dev/null || need+=(docker-registry)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi
# docker-py, the library client the tests drive berthd with.
if ! python3 -c 'import docker' 2>/dev/null; then
  python3 -m pip install -q docker
fi
