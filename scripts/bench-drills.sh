#!/bin/sh
# bench-drills.sh: run the drills on the lab and print the figures.
#
#   scripts/bench-drills.sh [REPORT_DIR]
#
# Needs root and a running lab (`belay lab up`). Runs app-node --repeat 10,
# db-primary --repeat 3, restore (and its corrupt variant) and site, writes each
# report (markdown + JSON) to REPORT_DIR (default ./drill-reports) and prints a
# summary table. Exit status: 1 if any drill run failed.
# The site drill runs last: it leaves the lab switched to the standby site
# (promoted standby database); `belay lab up` after `lab down` rebuilds it.
# Targets: VIP failover p50 <= 0.5 s, DB time to writable <= 15 s with 0
# missing acknowledged writes, restore verification ok and corruption caught,
# site switch <= 5 min with RPO <= 60 s.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
dir=${1:-drill-reports}
belay=${BELAY:-}
if [ -z "$belay" ]; then
    belay=$(mktemp -d)/belay
    (cd "$here" && go build -o "$belay" ./cmd/belay) || exit 1
fi
mkdir -p "$dir"
# The drills act on the lab, named explicitly (belay never guesses a target).
export BELAY_INVENTORY=lab
"$belay" lab status >/dev/null || { echo "bench-drills: the lab is not up (belay lab up)" >&2; exit 1; }

rc=0
summary=$(mktemp)
run() { # run NAME ARGS...: one drill; its JSON report goes to $dir/NAME.json
    name=$1
    shift
    echo "== belay drill $*" >&2
    "$belay" drill "$@" --report-dir "$dir" --json >"$dir/$name.json" || rc=1
    python3 - "$name" "$dir/$name.json" >>"$summary" <<'PY'
import json, sys
name, path = sys.argv[1:]
try:
    r = json.load(open(path))
except Exception as e:
    print(f"{name:<18} no report ({e})")
    sys.exit(0)
s = r["summary"]
ms = lambda ns: f"{ns/1e6:.0f} ms" if ns < 10e9 else f"{ns/1e9:.1f} s"
line = f"{name:<18} runs {s['runs']:>2} failed {s['failed']:>2}  detection p50 {ms(s['detectionP50Ns']):>8}  recovery p50 {ms(s['recoveryP50Ns']):>8} p95 {ms(s['recoveryP95Ns']):>8} max {ms(s['recoveryMaxNs']):>8}"
if s.get("ackedWrites"):
    line += f"  acked {s['ackedWrites']} missing {s['missingWrites']}"
if s.get("rpoMaxNs"):
    line += f"  RPO max {ms(s['rpoMaxNs'])}"
print(line)
for run in r["runs"]:
    if not run["ok"]:
        print(f"{'':<18} FAILED: {run.get('error', '')}")
PY
}

run app-node        app-node --repeat 10
run app-node-link   app-node --variant cut-link --repeat 3
run app-node-nginx  app-node --variant stop-nginx --repeat 3
run db-primary      db-primary --repeat 3
run restore         restore
run restore-corrupt restore --variant corrupt
run site            site

echo
echo "drill figures (reports in $dir):"
cat "$summary"
rm -f "$summary"
exit $rc
