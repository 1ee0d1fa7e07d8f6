#!/usr/bin/env bash
# Runs every test: unit tests of each crate and the end-to-end tests that start real daemons
# and drive them with the docker CLI, the berth CLI and docker-py. Needs root.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "test.sh: run as root (containers need namespaces, mounts and cgroups)" >&2; exit 1; }
bash scripts/deps.sh
command -v docker >/dev/null || { echo "test.sh: the docker CLI is needed at /usr/local/bin/docker" >&2; exit 1; }
cargo build --workspace --bins
cargo test --workspace -- --test-threads=2
