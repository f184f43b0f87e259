#!/usr/bin/env bash
# bench-vip.sh: ten VIP failovers (app-node kill) on the running lab, measured
# as clients feel them (docs/drills.md); prints the drill's report. Needs
# `belay lab up` and root. About 10-20 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/deps.sh
belay_install_deps
BELAY_LAB=1 BELAY_LAB_LONG=1 go test -count=1 -tags lab -v -timeout 60m -run 'TestLabVIPFailoverTargets$' ./drill/
