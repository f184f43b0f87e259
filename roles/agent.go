package roles

// AgentFile names the belay binary a host must run (URL and SHA-256, from
// belay:agent). First boot installs from it; `belay converge` rewrites it when
// belay:agent changes and then runs AgentInstallScript, so a version bump
// reaches running servers without replacing them.
const AgentFile = "/etc/belay/agent"

// AgentInstallScript installs the binary AgentFile names, refused unless its
// SHA-256 matches: it does nothing when the installed binary already matches,
// and otherwise downloads next to it and renames it into place (a running
// `belay host converge` keeps its old inode). Its input is a root-owned file
// the roles rendered from a validated Spec.Agent, parsed (never sourced); the
// URL reaches curl as one argument. It is short on purpose: every cloud
// host's user data carries it, and the backup host's is near Hetzner's limit.
const AgentInstallScript = `set -eu
url=$(sed -n 's/^url=//p' ` + AgentFile + `)
sum=$(sed -n 's/^sha256=//p' ` + AgentFile + `)
echo "$sum  ` + agentPath + `" | sha256sum -c --status - 2>/dev/null && exit 0
rm -f ` + agentPath + `.download
curl -fsSL --retry 5 --retry-all-errors --max-time 300 -o ` + agentPath + `.download "$url"
echo "$sum  ` + agentPath + `.download" | sha256sum -c --status - || { rm -f ` + agentPath + `.download; echo "belay agent: $url does not match sha256 $sum" >&2; exit 1; }
chmod 0755 ` + agentPath + `.download
mv -f ` + agentPath + `.download ` + agentPath + `
`

// AgentInstallName is the $0 of AgentInstallScript's `sh -ec` (it names the
// step in converge's activation order and in errors).
const AgentInstallName = "belay-agent-install"

// AgentInstallCmd is the argv that runs AgentInstallScript as root.
func AgentInstallCmd() []string {
	return []string{"sh", "-ec", AgentInstallScript, AgentInstallName}
}

// agentFile is AgentFile's content for a.
func agentFile(a *Agent) File {
	return File{Path: AgentFile, Owner: "root:root", Permissions: "0644",
		Content: "# belay:agent\nurl=" + a.URL + "\nsha256=" + a.SHA256 + "\n"}
}
