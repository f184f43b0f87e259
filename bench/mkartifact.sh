#!/bin/sh
# mkartifact.sh OUT.tar RELEASE_ID START_BINARY SIZE_BYTES CACHE_DIR
#
# Builds a bench release of SIZE_BYTES (within a few KiB): a plain tarball whose
# root holds the executable `start` (the lab app), a RELEASE file (so every
# release id has its own sha256) and padding.bin, incompressible random bytes
# filling the rest. Plain tar, not .tar.gz: random bytes do not compress, gzip
# would only add CPU time on both tools' side. The padding is made once per size
# in CACHE_DIR (head -c N /dev/urandom) and hard-linked into each release.
set -eu
[ $# -eq 5 ] || { echo "usage: $0 OUT.tar RELEASE_ID START_BINARY SIZE_BYTES CACHE_DIR" >&2; exit 2; }
out=$1 id=$2 start=$3 size=$4 cache=$5
[ -x "$start" ] || { echo "mkartifact: $start: not an executable" >&2; exit 2; }
case "$size" in ''|*[!0-9]*) echo "mkartifact: SIZE_BYTES $size: expected a number of bytes" >&2; exit 2;; esac
# Tar overhead: a 512-byte header per file plus 512-byte rounding, and the end blocks.
pad=$((size - $(stat -c %s "$start") - 8192))
[ "$pad" -gt 0 ] || { echo "mkartifact: $size bytes is smaller than $start" >&2; exit 2; }
mkdir -p "$cache"
padfile=$cache/padding-$pad.bin
if [ ! -f "$padfile" ]; then
	head -c "$pad" /dev/urandom > "$padfile.part"
	mv -f "$padfile.part" "$padfile"
fi
stage=$(mktemp -d "$cache/stage.XXXXXX")
trap 'rm -rf "$stage"' EXIT
cp "$start" "$stage/start"
chmod 0755 "$stage/start"
printf '%s\n' "$id" > "$stage/RELEASE"
# A hard link, not a copy: the padding can be 1 GB.
ln "$padfile" "$stage/padding.bin" 2>/dev/null || cp "$padfile" "$stage/padding.bin"
tar --create --file="$out.part" --directory="$stage" --owner=0 --group=0 --numeric-owner start RELEASE padding.bin
mv -f "$out.part" "$out"
