#!/usr/bin/env bash
# bench-lab.sh — lab figures on this box:
#
#   1. image build, cold (in a scratch cache, so a running lab's image is not
#      touched; the package download cache is reused unless --cold-downloads)
#      and cached;
#   2. `belay lab up` with the image cached: time to "cloud-init done" on every
#      machine (target: <= 60 s for the 8-machine default stack on 2 cores);
#   3. memory per machine (PSS of all its processes) and disk per machine;
#   4. a no-op `lab up` and `lab down`.
#
# Usage (root): scripts/bench-lab.sh [--apps N] [--stack FILE] [--cold-downloads]
#                                    [--no-cold] [--belay BIN] [--keep-lab]
# It brings the lab down before the boot measurement (and at the end unless --keep-lab).
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
CACHE=/var/cache/belay/lab
UP_ARGS=() COLD=1 COLD_DL=0 BELAY="" KEEP=0
while [ $# -gt 0 ]; do
	case $1 in
	--apps) UP_ARGS+=(--apps "$2"); shift 2 ;;
	--stack) UP_ARGS+=(--stack "$2"); shift 2 ;;
	--cold-downloads) COLD_DL=1; shift ;;
	--no-cold) COLD=0; shift ;;
	--belay) BELAY=$2; shift 2 ;;
	--keep-lab) KEEP=1; shift ;;
	*) echo "bench-lab.sh: unknown argument $1 (see the header for usage)" >&2; exit 2 ;;
	esac
done
[ "$(id -u)" = 0 ] || { echo "bench-lab.sh: needs root (it runs belay lab)" >&2; exit 1; }
command -v jq >/dev/null || { echo "bench-lab.sh: needs jq (apt-get install -y jq)" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -z "$BELAY" ]; then
	BELAY=$TMP/belay
	(cd "$REPO" && go build -o "$BELAY" ./cmd/belay)
fi

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

up() { # up LABEL: runs lab up --json, keeps the summary in $TMP/LABEL.json
	local t0 t1 rc=0
	t0=$(now)
	"$BELAY" lab up --json "${UP_ARGS[@]}" >"$TMP/$1.json" 2>"$TMP/$1.log" || rc=$?
	t1=$(now)
	echo "$(secs "$t0" "$t1")" >"$TMP/$1.wall"
	if [ $rc -ne 0 ]; then
		echo "!! lab up ($1) failed (exit $rc); its machines are still measured. Last lines:" >&2
		tail -n 30 "$TMP/$1.log" >&2
	fi
}

echo "== belay lab benchmark on $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GB RAM"
if [ $COLD = 1 ]; then
	# A cold build in a scratch cache: the image a running lab boots from stays untouched.
	mkdir -p "$TMP/cache"
	[ $COLD_DL = 0 ] && [ -d "$CACHE/debs" ] && ln -s "$CACHE/debs" "$TMP/cache/debs"
	"$BELAY" lab image --cache "$TMP/cache" --json >"$TMP/cold.json" 2>"$TMP/cold.log" || { tail -n 30 "$TMP/cold.log" >&2; exit 1; }
	echo "image build, cold ($([ $COLD_DL = 1 ] && echo "packages downloaded too" || echo "package downloads cached")): $(jq -r '.seconds * 10 | round / 10' "$TMP/cold.json") s, $(du -sm "$(jq -r .rootfs "$TMP/cold.json")" | cut -f1) MiB"
	rm -rf "$TMP/cache"
fi
"$BELAY" lab image --json >"$TMP/img.json" 2>"$TMP/img.log" || { tail -n 30 "$TMP/img.log" >&2; exit 1; }
echo "image, cached: $(jq -r '.seconds * 1000 | round / 1000' "$TMP/img.json") s$(jq -r 'if .cached then "" else " (it was not cached: built now)" end' "$TMP/img.json")"

"$BELAY" lab down >/dev/null 2>&1 || true
up cached
N=$(jq '.machines | length' "$TMP/cached.json")
echo "lab up, image cached, $N machines to all cloud-init done: $(cat "$TMP/cached.wall") s (target <= 60 s)"
jq -r '.machines[] | "  \(.name)\t\(.cloudInit)\t\(.seconds * 10 | round / 10) s"' "$TMP/cached.json" | column -t -s $'\t'

echo "memory per machine (PSS of all its processes) and disk (its own upper layer):"
total=0
for dir in /sys/fs/cgroup/unified/belay-lab/*/ /sys/fs/cgroup/belay-lab/*/; do
	dir=${dir%/}
	[ -d "$dir" ] || continue
	name=$(basename "$dir")
	kb=0
	for pid in $(find "$dir" -name cgroup.procs -exec cat {} + 2>/dev/null); do
		p=$(awk '/^Pss:/ {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
		kb=$((kb + ${p:-0}))
	done
	total=$((total + kb))
	disk=$(du -sm "/var/lib/belay/lab/machines/$name/disk/upper" 2>/dev/null | cut -f1)
	printf '  %-14s %6d MiB  disk %5s MiB\n' "$name" $((kb / 1024)) "${disk:-?}"
done
echo "  total          $((total / 1024)) MiB"

t0=$(now)
"$BELAY" lab up >/dev/null 2>&1 || true
echo "lab up again (no-op): $(secs "$t0" "$(now)") s"
if [ $KEEP = 0 ]; then
	t0=$(now)
	"$BELAY" lab down >/dev/null
	echo "lab down: $(secs "$t0" "$(now)") s"
fi
