#!/usr/bin/env bash
# The cells acceptance tests (docs/cells.md) on the lab's cells stack: 14
# machines (2 cells x 2 app servers, a router pair, the DB pair + monitor,
# backup and the standby site). Run as root on Debian 12, with no other lab
# up. scripts/test.sh runs only ./lab/cellslab/ (the stack boots and routes);
# this runs the rest: a bad canary cell rolls back alone and the everyday
# commands per cell (deploy/cellslab), the router acceptance (a few hundred
# shops, propagation, a 10 MB shop moved under load, routing from cache with
# the database down, router overhead), and `belay drill cell`. ~20 min.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
belay_install_deps

export BELAY_LAB=1 BELAY_INVENTORY=lab
bindir=$(mktemp -d)
bin=$bindir/belay
go build -o "$bin" ./cmd/belay
lab_down() { "$bin" lab down >/dev/null 2>&1 || true; }
cleanup() { lab_down; rm -rf "$bindir"; }
trap cleanup EXIT
lab_down
"$bin" lab up --stack lab/cells-stack.yaml
# deploy/cellslab first: its baseline deploy puts the lab app on every cell,
# which the router and drill tests route to.
go test -count=1 -p 1 -tags lab -timeout 40m ./deploy/cellslab/ ./router/lab/
go test -count=1 -tags lab -timeout 20m -run TestLabCellDrill ./drill/
