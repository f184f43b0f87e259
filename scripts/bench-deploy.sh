#!/usr/bin/env bash
# bench-deploy.sh — deploy figures on the lab, side by side in one run:
#
#   1. full rollout of a 50 MiB release to every app server: `belay deploy`
#      straight to 100 % vs an Ansible playbook doing the same steps
#      (bench/deploy.yml), interleaved, RUNS times each, median;
#   2. growth: belay on SMALL servers (default 2) vs on all of them;
#   3. the automatic rollback after a canary verdict: a release that fails
#      its whitelisted requests (500s) under traffic through the VIP, rejected
#      by the analysis; belay's own figure from the verdict to every server
#      back on stable;
#   4. `belay rollback` to the release on disk, on all servers;
#   5. the deployer's peak RSS while pushing a 1 GiB release.
#
# Usage (root, next to a running lab; see docs/benchmarks.md):
#   scripts/bench-deploy.sh [--stack bench/stack-replicas8.yaml] [--runs 3]
#       [--size-mb 50] [--big-mb 1024] [--big-hosts N] [--small 2] [--app NAME]
#       [--belay BIN] [--no-ansible] [--keep-lab] [--out FILE] [--logs DIR]
#       [--settle SECONDS]
#       [--inventory FILE --key FILE --known-hosts FILE]
#
# --stack brings the lab up with that stack first (`belay lab up --stack`); the
# lab is brought down at the end only if it was not running before. Without
# --stack the lab is used as it is. --inventory (with the deploy user's --key and
# a --known-hosts file pinning the servers' keys) benches other servers instead. Every run uses fresh release ids, leaves
# every app server on one release, removes the 1 GiB release again and deletes
# its own temporary files.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
LAB_DIR=/var/lib/belay/lab
INV=$LAB_DIR/inventory.json
KEY=$LAB_DIR/id_ed25519
KNOWN_HOSTS=$LAB_DIR/known_hosts
USE_LAB=1

STACK="" RUNS=3 SIZE_MB=50 BIG_MB=1024 BIG_HOSTS=0 SMALL=2 APP="" BELAY="" ANSIBLE=1 KEEP_LAB=0 OUT="" LOGS="" SETTLE=0
while [ $# -gt 0 ]; do
	case "$1" in
	--stack) STACK=$2; shift 2 ;;
	--runs) RUNS=$2; shift 2 ;;
	--size-mb) SIZE_MB=$2; shift 2 ;;
	--big-mb) BIG_MB=$2; shift 2 ;;
	--big-hosts) BIG_HOSTS=$2; shift 2 ;;
	--small) SMALL=$2; shift 2 ;;
	--app) APP=$2; shift 2 ;;
	--belay) BELAY=$2; shift 2 ;;
	--no-ansible) ANSIBLE=0; shift ;;
	--keep-lab) KEEP_LAB=1; shift ;;
	--out) OUT=$2; shift 2 ;;
	--logs) LOGS=$2; shift 2 ;;
	--settle) SETTLE=$2; shift 2 ;;
	--inventory) INV=$2; USE_LAB=0; shift 2 ;;
	--key) KEY=$2; shift 2 ;;
	--known-hosts) KNOWN_HOSTS=$2; shift 2 ;;
	-h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
	*) echo "bench-deploy: unknown argument $1 (see --help)" >&2; exit 2 ;;
	esac
done
for v in RUNS SIZE_MB BIG_MB BIG_HOSTS SMALL SETTLE; do
	case "${!v}" in '' | *[!0-9]*) echo "bench-deploy: --$(echo "$v" | tr 'A-Z_' 'a-z-') ${!v}: expected a whole number" >&2; exit 2 ;; esac
done
[ "$RUNS" -ge 1 ] || { echo "bench-deploy: --runs: at least 1" >&2; exit 2; }
[ "$SIZE_MB" -ge 10 ] || { echo "bench-deploy: --size-mb: at least 10 (the lab app alone is ~8 MiB)" >&2; exit 2; }

say() { printf '[bench %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "run as root (the lab needs it)"
for tool in go python3 /usr/bin/time ssh; do
	command -v "$tool" >/dev/null || die "$tool not found"
done
if [ "$ANSIBLE" = 1 ]; then
	command -v ansible-playbook >/dev/null || die "ansible-playbook not found: apt-get install ansible (or pass --no-ansible)"
fi

WORK=$(mktemp -d /var/tmp/belay-bench.XXXXXX) # /var/tmp: on disk, the 1 GiB artifact does not fit a small tmpfs
BROUGHT_UP=0
LOAD_PID=""
# The verdict figure's whitelisted shop (any name: the 500s come from the canary slot).
VERDICT_SHOP=verdict.bench.belay.test
cleanup() {
	local rc=$?
	[ -z "$LOAD_PID" ] || kill "$LOAD_PID" 2>/dev/null || true
	# Ansible's SSH control masters outlive the play (ControlPersist): end them.
	stop_masters || true
	if [ -n "$LOGS" ]; then
		# Every run's output (belay's per-host step lines, Ansible's task times).
		mkdir -p "$LOGS" && cp "$WORK"/*.log "$WORK"/*.time "$WORK"/*.json "$WORK"/results.tsv "$LOGS"/ 2>/dev/null
	fi
	rm -rf "$WORK"
	if [ "$BROUGHT_UP" = 1 ] && [ "$KEEP_LAB" = 0 ]; then
		say "bringing the lab down (this run brought it up)"
		"$BELAY" lab down >&2 || say "belay lab down failed: run it by hand"
	fi
	exit $rc
}
stop_masters() {
	local s
	for s in "$WORK"/cp.*/*; do
		[ -S "$s" ] && ssh -o ControlPath="$s" -O exit bench-master >/dev/null 2>&1
	done
	return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Both tools authenticate with the lab's deploy key only, never an agent.
unset SSH_AUTH_SOCK

cd "$REPO"
if [ -z "$BELAY" ]; then
	say "building belay from this tree"
	go build -o "$WORK/belay" ./cmd/belay
	BELAY=$WORK/belay
fi
go build -o "$WORK/labinv" ./bench/labinv
go build -o "$WORK/load" ./bench/load
CGO_ENABLED=0 go build -o "$WORK/labapp" ./deploy/testdata/labapp
# The same app answering 500 to real requests in the canary slot (health passes).
CGO_ENABLED=0 go build -ldflags "-X main.canaryErrors=yes" -o "$WORK/labapp-5xx" ./deploy/testdata/labapp
LABINV=$WORK/labinv

# --- the lab ----------------------------------------------------------------
lab_running() {
	"$BELAY" lab status --json 2>/dev/null | python3 -c '
import json, sys
try:
    st = json.load(sys.stdin)
except ValueError:
    sys.exit(1)
sys.exit(0 if any(m.get("state") == "running" for m in st.get("machines") or []) else 1)'
}
if [ -n "$STACK" ]; then
	[ "$USE_LAB" = 1 ] || die "--stack and --inventory exclude each other"
	[ -f "$STACK" ] || die "--stack $STACK: no such file"
	lab_running || BROUGHT_UP=1
	say "belay lab up --stack $STACK (lab was $([ "$BROUGHT_UP" = 1 ] && echo down || echo up))"
	"$BELAY" lab up --stack "$STACK" >&2 || die "belay lab up --stack $STACK failed"
	if [ "$SETTLE" -gt 0 ]; then
		# Freshly booted machines still start their services (PostgreSQL, ...).
		say "letting the lab settle for ${SETTLE}s (load average $(cut -d' ' -f1-3 /proc/loadavg))"
		sleep "$SETTLE"
	fi
fi
if [ "$USE_LAB" = 1 ]; then
	lab_running || die "the lab is not running: belay lab up (or pass --stack FILE)"
fi
for f in "$INV" "$KEY" "$KNOWN_HOSTS"; do
	[ -f "$f" ] || die "$f: no such file (the inventory, the deploy key and the known_hosts file are needed)"
done

if [ -z "$APP" ]; then
	APP=$(python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["apps"]; print(a[0]["name"] if len(a)==1 else "")' "$INV")
	[ -n "$APP" ] || die "the inventory has several apps: pass --app NAME"
fi
"$LABINV" hosts --inventory "$INV" --app "$APP" > "$WORK/hosts.all"
N=$(wc -l < "$WORK/hosts.all")
[ "$N" -ge 1 ] || die "app $APP has no servers"
if [ "$SMALL" -lt 1 ] || [ "$SMALL" -gt "$N" ]; then
	die "--small $SMALL: app $APP has $N servers"
fi
[ "$N" -ge 8 ] || say "NOTE: app $APP has $N servers, not 8: the 8-server figures are measured on $N (bring the lab up with --stack bench/stack-replicas8.yaml)"
"$LABINV" subset --inventory "$INV" --app "$APP" --hosts "$SMALL" > "$WORK/inventory.small.json"
if [ "$SMALL" -lt "$N" ]; then
	"$LABINV" subset --inventory "$INV" --app "$APP" --after "$SMALL" > "$WORK/inventory.rest.json"
fi
if [ "$ANSIBLE" = 1 ]; then
	"$LABINV" ansible --inventory "$INV" --app "$APP" --key "$KEY" --known-hosts "$KNOWN_HOSTS" > "$WORK/ansible-hosts.ini"
fi

# The comparison is on the app's servers only: the standby site's server stays
# out of belay's rollouts (--skip-standby), as it is not in Ansible's inventory.
SKIP=()
if "$BELAY" deploy --help 2>&1 | grep -q -- --skip-standby; then
	SKIP=(--skip-standby)
else
	say "NOTE: this belay has no --skip-standby: its rollouts include the standby server"
fi

# belay_argv INVENTORY ARGS... sets CMD to a belay command line with the lab's
# key (host keys are pinned in the inventory); belay_on runs it.
belay_argv() {
	local inv=$1
	shift
	CMD=("$BELAY" "$@" --inventory "$inv" --app "$APP" --ssh-key "$KEY" "${SKIP[@]}")
}
belay_on() {
	belay_argv "$@"
	"${CMD[@]}"
}

# --- artifacts ----------------------------------------------------------------
RUNID=$(date -u +%m%d%H%M%S)
rel() { echo "bench-$RUNID-$1"; }
artifact() { # ID SIZE_MB [APP_BINARY] -> path
	local out=$WORK/$1.tar
	"$REPO/bench/mkartifact.sh" "$out" "$1" "${3:-$WORK/labapp}" $(($2 * 1024 * 1024)) "$WORK/cache"
	echo "$out"
}
sha256() { sha256sum "$1" | cut -d' ' -f1; }

# --- timing -----------------------------------------------------------------
RESULTS=$WORK/results.tsv # figure, run, wall seconds, max RSS KiB, belay's own duration
: > "$RESULTS"
timed() { # FIGURE RUN LOG CMD... : wall time and peak RSS of CMD, failure stops the bench
	local fig=$1 run=$2 log=$3
	shift 3
	local t0 t1 rss
	t0=$(date +%s%N)
	if ! /usr/bin/time -v -o "$log.time" "$@" > "$log" 2>&1; then
		tail -40 "$log" >&2
		die "$fig (run $run) failed; its output is above"
	fi
	t1=$(date +%s%N)
	rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$log.time")
	# belay's last line: "deploy shop v2: ok (previous v1) in 3.21s" — its own timer,
	# which starts after connecting to every server and taking the lease.
	own=$(sed -n 's/^[a-z]* [^ ]* [^ ]*: ok.* in \([0-9][0-9.a-zµ]*\)$/\1/p' "$log" | tail -1)
	printf '%s\t%s\t%s\t%s\t%s\n' "$fig" "$run" "$(awk -v a="$t0" -v b="$t1" 'BEGIN{printf "%.3f", (b-a)/1e9}')" "$rss" "$own" >> "$RESULTS"
	say "$fig run $run: $(tail -1 "$RESULTS" | cut -f3) s, peak RSS $((rss / 1024)) MiB"
}

# deploy_argv INVENTORY ID ARTIFACT: straight to 100 % — no whitelist, no % steps,
# no analysis pause. belay still starts the release as the canary, health-checks
# it, routes traffic to it while stable restarts (no gap), then back to stable.
deploy_argv() {
	belay_argv "$1" deploy --artifact "$3" --release "$2" --steps none --pause 0
}

# ansible_argv ID ARTIFACT sets CMD to the playbook run, with a fresh SSH
# control directory: every run starts cold, like belay's.
ansible_argv() {
	local cp
	cp=$(mktemp -d "$WORK/cp.XXXXXX")
	CMD=(env ANSIBLE_CONFIG="$REPO/bench/ansible.cfg" ANSIBLE_SSH_CONTROL_PATH_DIR="$cp"
		ansible-playbook -i "$WORK/ansible-hosts.ini" "$REPO/bench/deploy.yml"
		-e release_id="$1" -e artifact="$2" -e artifact_sha256="$(sha256 "$2")")
}

current_of() { # HOST : the release `current` points at, from belay status
	belay_on "$INV" status --json | python3 -c '
import json, sys
for h in json.load(sys.stdin):
    if h.get("host") == sys.argv[1]:
        print(h.get("current", "")); break' "$1"
}

host_ssh() { # ADDR PORT USER CMD : strict host-key checking against the lab known_hosts
	ssh -n -i "$KEY" -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes \
		-o UserKnownHostsFile="$KNOWN_HOSTS" -o GlobalKnownHostsFile=/dev/null -p "$2" "$3@$1" "$4"
}

# --- 0. warm-up (untimed): every server on one belay release ----------------------
say "app $APP: $N servers ($(cut -d' ' -f1 "$WORK/hosts.all" | tr '\n' ' ')); ${SIZE_MB} MiB releases, $RUNS runs; load average $(cut -d' ' -f1-3 /proc/loadavg)"
base=$(rel base)
deploy_argv "$INV" "$base" "$(artifact "$base" "$SIZE_MB")"
"${CMD[@]}" > "$WORK/warmup-belay.log" 2>&1 ||
	{ tail -40 "$WORK/warmup-belay.log" >&2; die "warm-up deploy failed (is another deploy running? belay status --app $APP)"; }
if [ "$ANSIBLE" = 1 ]; then
	a0=$(rel a0)
	ansible_argv "$a0" "$(artifact "$a0" "$SIZE_MB")"
	"${CMD[@]}" > "$WORK/warmup-ansible.log" 2>&1 ||
		{ tail -40 "$WORK/warmup-ansible.log" >&2; die "warm-up Ansible run failed"; }
fi
say "warm-up done"

# --- 1-3. interleaved runs ----------------------------------------------------------
for i in $(seq 1 "$RUNS"); do
	b=$(rel "b$i")
	art=$(artifact "$b" "$SIZE_MB")
	deploy_argv "$INV" "$b" "$art"
	timed "belay-all" "$i" "$WORK/belay-all-$i.log" "${CMD[@]}"
	# A canary that fails its whitelisted requests: the verdict rolls every
	# server back. The figure is belay's own, from the verdict to every server
	# back on stable with its journal written (the JSON outcome's "rollback").
	v=$(rel "v$i")
	art=$(artifact "$v" "$SIZE_MB" "$WORK/labapp-5xx")
	"$WORK/load" --inventory "$INV" --app "$APP" --shop "$VERDICT_SHOP" > "$WORK/load-$i.log" 2>&1 &
	LOAD_PID=$!
	belay_argv "$INV" deploy --artifact "$art" --release "$v" --whitelist-shops "$VERDICT_SHOP" --steps none \
		--pause 3s --max-wait 20s --min-requests 20 --json
	"${CMD[@]}" > "$WORK/verdict-$i.json" 2> "$WORK/verdict-$i.log" && die "the 500-answering canary $v was promoted (see $WORK/verdict-$i.log)"
	kill "$LOAD_PID" && wait "$LOAD_PID" || true
	LOAD_PID=""
	rb=$(python3 -c '
import json, re, sys
o = json.load(open(sys.argv[1]))
if o.get("result") != "rolled-back" or "canary rejected" not in o.get("error", ""):
    sys.exit("verdict run: result %r, error %r" % (o.get("result"), o.get("error")))
units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
print("%.3f" % sum(float(v) * units[u] for v, u in re.findall(r"([0-9.]+)(h|ms|m|s|us|µs|ns)", o["rollback"])))' "$WORK/verdict-$i.json") ||
		{ tail -40 "$WORK/verdict-$i.log" >&2; die "verdict run $i did not end in a rollback after a rejected canary"; }
	printf '%s\t%s\t%s\t%s\t%s\n' "verdict-rollback" "$i" "$rb" "" "" >> "$RESULTS"
	say "verdict-rollback run $i: $rb s from the verdict to every server on stable ($(sed -n 's/.*FAIL: //p' "$WORK/verdict-$i.log" | head -1))"
	# The release just went live; a bad verdict now means `belay rollback`:
	# back to the last known-good release, which is still on every server.
	belay_argv "$INV" rollback
	timed "rollback-all" "$i" "$WORK/rollback-all-$i.log" "${CMD[@]}"
	if [ "$ANSIBLE" = 1 ]; then
		a=$(rel "a$i")
		art=$(artifact "$a" "$SIZE_MB")
		ansible_argv "$a" "$art"
		timed "ansible-all" "$i" "$WORK/ansible-all-$i.log" "${CMD[@]}"
		stop_masters
	fi
	if [ "$SMALL" -lt "$N" ]; then
		g=$(rel "s$i")
		art=$(artifact "$g" "$SIZE_MB")
		deploy_argv "$WORK/inventory.small.json" "$g" "$art"
		timed "belay-small" "$i" "$WORK/belay-small-$i.log" "${CMD[@]}"
		# Back to one release everywhere (untimed): the same release to the other
		# servers, so it is on every server's disk and in every journal — a later
		# `belay rollback` may pick it.
		deploy_argv "$WORK/inventory.rest.json" "$g" "$art"
		"${CMD[@]}" > "$WORK/realign-$i.log" 2>&1 ||
			{ tail -40 "$WORK/realign-$i.log" >&2; die "deploying $g to the other servers failed"; }
	fi
done

# --- 4. peak RSS pushing a big release ---------------------------------------------
BIG_N=0
if [ "$BIG_MB" -gt 0 ]; then
	need=$(((2 * BIG_MB + 100) * 1024 * 1024)) # the incoming file and the unpacked release, plus slack
	while read -r name addr port user; do
		if [ "$BIG_HOSTS" -gt 0 ] && [ "$BIG_N" -ge "$BIG_HOSTS" ]; then
			break
		fi
		avail=$(host_ssh "$addr" "$port" "$user" "df -B1 --output=avail /srv/$APP | tail -1" | tr -d ' ')
		if [ "${avail:-0}" -lt "$need" ]; then
			say "$name: $((avail / 1024 / 1024)) MiB free under /srv/$APP, a ${BIG_MB} MiB release needs $((need / 1024 / 1024)) MiB: pushing to the servers before it only"
			break
		fi
		BIG_N=$((BIG_N + 1))
	done < "$WORK/hosts.all"
	if [ "$BIG_N" -eq 0 ]; then
		say "no server has room for a ${BIG_MB} MiB release: peak RSS figure skipped"
	else
		big=$(rel big)
		say "making the ${BIG_MB} MiB release"
		art=$(artifact "$big" "$BIG_MB")
		inv=$INV
		if [ "$BIG_N" -lt "$N" ]; then
			"$LABINV" subset --inventory "$INV" --app "$APP" --hosts "$BIG_N" > "$WORK/inventory.big.json"
			inv=$WORK/inventory.big.json
		fi
		deploy_argv "$inv" "$big" "$art"
		timed "belay-big" 1 "$WORK/belay-big.log" "${CMD[@]}"
		# Take it out again: back to the previous release, then delete it from disk.
		belay_on "$inv" rollback > "$WORK/rollback-big.log" 2>&1 ||
			{ tail -40 "$WORK/rollback-big.log" >&2; die "rolling back the ${BIG_MB} MiB release failed"; }
		head -n "$BIG_N" "$WORK/hosts.all" | while read -r name addr port user; do
			host_ssh "$addr" "$port" "$user" "rm -rf /srv/$APP/releases/$big /srv/$APP/.belay/releases/$big.sha256 /srv/$APP/.belay/incoming/$big.artifact /srv/$APP/.belay/incoming/$big.artifact.part" < /dev/null ||
				say "WARNING: could not remove release $big from $name"
		done
		rm -f "$art"
	fi
fi

# --- figures ----------------------------------------------------------------------
say "done; every server runs $(current_of "$(awk 'NR==1{print $1}' "$WORK/hosts.all")"); load average $(cut -d' ' -f1-3 /proc/loadavg)"
python3 - "$RESULTS" "$N" "$SMALL" "$SIZE_MB" "$BIG_MB" "$BIG_N" "$RUNS" "${OUT:-}" <<'PY'
import re, statistics, sys
from collections import defaultdict

def go_duration(s):
    """Seconds in a Go duration string such as 1m2.5s, 850ms or 3.2s."""
    units = {"h": 3600, "m": 60, "s": 1, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "ns": 1e-9}
    parts = re.findall(r"([0-9.]+)(h|ms|m|s|us|µs|ns)", s)
    return sum(float(v) * units[u] for v, u in parts) if parts else None

path, n, small, size, big, big_hosts, runs, out = sys.argv[1:]
runs_by = defaultdict(list)
rss_by = defaultdict(list)
own_by = defaultdict(list)
for line in open(path):
    fig, run, secs, rss, own = line.rstrip("\n").split("\t")
    runs_by[fig].append(float(secs))
    rss_by[fig].append(int(rss or 0))
    if go_duration(own) is not None:
        own_by[fig].append(go_duration(own))

def own(fig):
    return f"{statistics.median(own_by[fig]):.2f} s" if own_by.get(fig) else ""

def med(fig):
    return statistics.median(runs_by[fig]) if runs_by.get(fig) else None

def runs_txt(fig):
    return ", ".join(f"{s:.2f}" for s in runs_by.get(fig, [])) or "-"

def sec(v):
    return "not measured" if v is None else f"{v:.2f} s"

rows = []
b, a = med("belay-all"), med("ansible-all")
rows.append((f"rollout {size} MiB, {n} servers: belay", "", sec(b), own("belay-all"), runs_txt("belay-all"), ""))
rows.append((f"rollout {size} MiB, {n} servers: Ansible", "", sec(a), "", runs_txt("ansible-all"), ""))
if a and b:
    rows.append(("speed-up Ansible / belay", ">= 5x", f"{a / b:.2f}x", "", "", "yes" if a / b >= 5 else "NO"))
s = med("belay-small")
rows.append((f"rollout {size} MiB, {small} servers: belay", "", sec(s), own("belay-small"), runs_txt("belay-small"), ""))
if s and b:
    rows.append((f"growth time({n}) / time({small})", "<= 1.5", f"{b / s:.2f}", "", "", "yes" if b / s <= 1.5 else "NO"))
v = med("verdict-rollback")
rows.append((f"rollback after a canary verdict, {n} servers", "<= 1 s", sec(v), "", runs_txt("verdict-rollback"), "" if v is None else ("yes" if v <= 1 else "NO")))
r = med("rollback-all")
rows.append((f"`belay rollback` (release on disk, zero-gap swap), {n} servers", "", sec(r), own("rollback-all"), runs_txt("rollback-all"), ""))
if rss_by.get("belay-big"):
    m = max(rss_by["belay-big"]) / 1024
    rows.append((f"belay peak RSS, {big} MiB to {big_hosts} servers", "<= 100 MiB", f"{m:.1f} MiB", own("belay-big"), runs_txt("belay-big"), "yes" if m <= 100 else "NO"))
else:
    rows.append((f"belay peak RSS, {big} MiB", "<= 100 MiB", "not measured", "", "", ""))
if rss_by.get("belay-all"):
    rows.append((f"belay peak RSS, {size} MiB to {n} servers", "", f"{max(rss_by['belay-all']) / 1024:.1f} MiB", "", "", ""))
if rss_by.get("ansible-all"):
    rows.append((f"ansible-playbook peak RSS (largest process), {size} MiB to {n} servers", "", f"{max(rss_by['ansible-all']) / 1024:.1f} MiB", "", "", ""))

head = ("figure", "target", f"median of {runs} (wall)", "belay's own timer", "runs, wall (s)", "met")
table = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
table += ["| " + " | ".join(r) + " |" for r in rows]
text = "\n".join(table)
print(text)
if out:
    with open(out, "w") as f:
        f.write(text + "\n")
PY
