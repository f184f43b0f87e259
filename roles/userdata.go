package roles

// Secrets' lifetime in user data. The user data carries host secrets (SSH
// host keys, database and restic passwords, provider tokens) for first boot.
// The metadata service is closed to every user but root (nftables owner
// rule), but cloud-init also keeps copies on disk: the raw and processed
// user data (user-data.txt, user-data.txt.i, cloud-config.txt), vendor data,
// the pickled datasource (obj.pkl, which holds the raw user data too), the
// runcmd script and, in the lab, the NoCloud seed. The last boot step
// (scrubUserData) removes the plain copies and closes /var/lib/cloud to
// everyone but root; cloud-init rewrites its copies at a later boot
// (root-only files, under the now 0700 directory), and keeps obj.pkl and the
// seed, which a reboot needs. Its logs are made root:adm 0640 (belay-app and
// the deploy user are not in adm).

// UserDataDir is cloud-init's state directory (the instance copies live below it).
const UserDataDir = "/var/lib/cloud"

// scrubUserDataScript takes the filesystem root as $1 ("" on a host; a
// scratch root in tests).
const scrubUserDataScript = `set -eu
r=${1:-}
[ -d "$r/var/lib/cloud" ] || exit 0
chmod 0700 "$r/var/lib/cloud"
for d in "$r"/var/lib/cloud/instances/*/; do
	[ -d "$d" ] || continue
	for f in user-data.txt user-data.txt.i cloud-config.txt vendor-data.txt vendor-data.txt.i vendor-data2.txt vendor-data2.txt.i vendor-cloud-config.txt; do
		rm -f -- "$d$f"
	done
	chmod -R go-rwx -- "$d"
done
for f in "$r/var/log/cloud-init.log" "$r/var/log/cloud-init-output.log"; do
	[ -f "$f" ] && chmod 0640 -- "$f" || true
done
`

// scrubUserData is the runcmd step (argv, no interpolation) that runs the script.
func scrubUserData() []string {
	return []string{"sh", "-c", scrubUserDataScript, "belay-scrub-user-data", ""}
}
