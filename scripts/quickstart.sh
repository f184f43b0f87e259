#!/usr/bin/env bash
# The main job on a fresh Debian 12 machine, as root: install what is missing,
# build belay, and bring up the lab — the whole belay topology (app pair, PostgreSQL
# pair + monitor, standby site, backup repository) as real machines on this box.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
belay_install_deps
go build -o /usr/local/bin/belay ./cmd/belay
belay lab up "$@"
# belay acts only on a named target; the lab is one like any other.
echo 'The lab is up. Point belay at it with: export BELAY_INVENTORY=lab  (or --inventory lab)' >&2
