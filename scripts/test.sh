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
# -p 1: lab tests share one bridge plan and this box's 2 cores.
BELAY_LAB=1 go test -count=1 -p 1 -tags lab -timeout 60m ./...
