#!/usr/bin/env bash
# belay's test suite: vet, unit tests, then the lab tests on real systemd-nspawn
# machines. Run as root on Debian 12: it installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
belay_install_deps

echo "== go vet"
go vet ./...
go vet -tags lab ./...

echo "== unit tests"
go test -count=1 -timeout 20m ./...

echo "== lab tests (real machines)"
export BELAY_LAB=1
# The lab tests' belay commands act on the lab: belay needs it named.
export BELAY_INVENTORY=lab
bindir=$(mktemp -d)
bin=$bindir/belay
go build -o "$bin" ./cmd/belay
lab_down() { "$bin" lab down >/dev/null 2>&1 || true; }
cleanup() { lab_down; rm -rf "$bindir"; }
trap cleanup EXIT
# A lab left over from an interrupted run would be reused by the tests below
# and hide what a fresh `lab up` does: start from nothing.
lab_down

# 1. The lab itself on a fresh lab: bring-up, every fault injected and healed,
#    and `lab down` leaving no interface, namespace or process behind.
go test -count=1 -tags lab -timeout 30m ./lab/

# 2. Deploys and drills share one lab, as a user's session would.
"$bin" lab up
# Day-0 protection first: it measures from the end of `lab up` (the first full
# backup, the standby usable, then a site drill with no manual step).
go test -count=1 -tags lab -timeout 15m -run TestLabDay0Protection ./drill/
# (It ran above; the package run below skips it rather than run it twice.)
go test -count=1 -p 1 -tags lab -timeout 40m -skip TestLabDay0Protection ./deploy/ ./drill/ ./converge/

# 3. The cells stack (docs/cells.md) on its own lab: 17 machines boot with no
#    manual step, each cell answers at its VIP, the routers route mapped shops
#    and answer unknown ones with their 404. The full cells acceptance (deploy
#    waves, the router under load, the cell drill) is scripts/test-cells.sh.
lab_down
go test -count=1 -tags lab -timeout 20m ./lab/cellslab/
