package config

// Validation of the admin access, the database, backups, deploy and agent
// settings, and the secrets.

import (
	"crypto/rsa"
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"golang.org/x/crypto/ssh"
)

func (v *validator) database() {
	db := v.c.Database
	const k = KeyDatabase
	v.size(k+".size", db.Size, "primary", false)
	v.size(k+".standbySize", db.StandbySize, "standby", false)
	v.size(k+".monitorSize", db.MonitorSize, "primary", false)
	if db.PostgresVersion != DefaultPostgresVersion {
		v.add(k+".postgresVersion", "%d, expected %d: the servers run Debian 12, which ships PostgreSQL %d (and pg_auto_failover and pgBackRest built for it)", db.PostgresVersion, DefaultPostgresVersion, DefaultPostgresVersion)
	}
	volumeSize(v, k+".volumeGb", db.VolumeGB)
	switch {
	case db.Name == "":
		v.add(k+".name", "empty, expected a database name (default %q)", DefaultDatabaseName)
	case !pgIdent.MatchString(db.Name):
		v.add(k+".name", "got %q, expected a lowercase PostgreSQL identifier: letters, digits and '_', starting with a letter or '_', at most 63 characters", db.Name)
	case slices.Contains([]string{"postgres", "template0", "template1", "pg_auto_failover"}, db.Name):
		v.add(k+".name", "got %q, a database PostgreSQL or pg_auto_failover uses itself, expected another name", db.Name)
	}
}

func (v *validator) backups() {
	b := v.c.Backups
	const k = KeyBackups
	switch b.FullEvery {
	case "daily", "weekly":
	case "":
		v.add(k+".fullEvery", "missing, expected daily or weekly")
	default:
		v.add(k+".fullEvery", "got %q, expected daily or weekly", b.FullEvery)
	}
	if b.RetentionDays < 1 {
		v.add(k+".retentionDays", "%d, expected a number of days to keep backups, at least 1", b.RetentionDays)
	}
	v.size(k+".repoSize", b.RepoSize, "standby", false)
	volumeSize(v, k+".volumeGb", b.VolumeGB)
	if b.ArchiveTimeoutSeconds < 10 || b.ArchiveTimeoutSeconds > 3600 {
		v.add(k+".archiveTimeoutSeconds", "%d, expected 10..3600 seconds (the most WAL the standby site may lag; each timeout ships a WAL segment)", b.ArchiveTimeoutSeconds)
	}
}

func (v *validator) deploy() {
	d := v.c.Deploy
	const k = KeyDeploy
	if d.KeepReleases < 2 || d.KeepReleases > 100 {
		v.add(k+".keepReleases", "%d, expected 2..100 (at least the current release and one to roll back to)", d.KeepReleases)
	}
	if !nginxVarName.MatchString(d.ShopParam) {
		v.add(k+".shopParam", "got %q, expected 1-64 letters, digits or '_' (nginx reads it as $arg_<name>)", d.ShopParam)
	}
	if !headerName.MatchString(d.ShopHeader) {
		v.add(k+".shopHeader", "got %q, expected an HTTP header name of 1-64 letters, digits or '-' (nginx drops headers with '_')", d.ShopHeader)
	}
	if !nginxVarName.MatchString(d.ShopCookie) {
		v.add(k+".shopCookie", "got %q, expected 1-64 letters, digits or '_' (nginx reads it as $cookie_<name>)", d.ShopCookie)
	}
}

var sha256Hex = regexp.MustCompile(`^[0-9a-f]{64}$`)

// agent checks belay:agent. Cloud servers cannot move their floating IP without
// the belay binary, so a cloud stack must say where to get it; the lab copies it.
func (v *validator) agent() {
	a := v.c.Agent
	const k = KeyAgent
	lab := v.c.Sites.Primary.Provider == Lab
	if lab && a.URL == "" && a.SHA256 == "" {
		return
	}
	if a.URL == "" {
		v.add(k+".url", "missing, expected the https URL of the linux/amd64 belay binary servers download at first boot (keepalived runs `belay vip claim` on failover)")
	} else if u, err := url.Parse(a.URL); err != nil || u.Scheme != "https" || u.Host == "" {
		v.add(k+".url", "got %q, expected an https URL", a.URL)
	}
	if !sha256Hex.MatchString(a.SHA256) {
		v.add(k+".sha256", "got %q, expected the binary's SHA-256 as 64 lowercase hex digits (sha256sum belay)", a.SHA256)
	}
}

func (v *validator) secrets() {
	seed := v.c.HostKeySeed
	switch {
	case seed == "":
		v.add(KeyHostKeySeed, "missing, expected %s", keyHelp[KeyHostKeySeed])
	case len(strings.TrimSpace(seed)) < MinHostKeySeedLen:
		// Never echo the secret itself.
		v.add(KeyHostKeySeed, "%d characters, expected at least %d (pulumi config set --secret belay:hostKeySeed \"$(openssl rand -hex 32)\")", len(strings.TrimSpace(seed)), MinHostKeySeedLen)
	}
	t := v.c.HostAPITokens
	for _, f := range []struct{ name, tok string }{{"digitalocean", t.DigitalOcean}, {"hetzner", t.Hetzner}} {
		if f.tok != "" && strings.ContainsAny(f.tok, " \t\r\n\"'") {
			v.add(KeyHostAPITokens+"."+f.name, "contains whitespace or quotes, expected the API token alone")
		}
	}
}

func (v *validator) admin() {
	a := v.c.Admin
	const k = KeyAdmin
	if len(a.SSHKeys) == 0 {
		v.add(k+".sshKeys", "missing, expected at least one SSH public key (an authorized_keys line such as \"ssh-ed25519 AAAA... you@laptop\")")
	}
	seen := map[string]int{}
	for i, line := range a.SSHKeys {
		path := fmt.Sprintf("%s.sshKeys[%d]", k, i)
		pub, _, options, rest, err := ssh.ParseAuthorizedKey([]byte(line))
		switch {
		case err != nil:
			v.add(path, "not an SSH public key (%v), expected an authorized_keys line such as \"ssh-ed25519 AAAA... you@laptop\"", err)
			continue
		case len(options) > 0:
			v.add(path, "has authorized_keys options %q, expected a plain public key (belay writes the options itself)", strings.Join(options, ","))
			continue
		case len(strings.TrimSpace(string(rest))) > 0:
			v.add(path, "holds more than one key, expected one key per list entry")
			continue
		}
		if pub.Type() == ssh.KeyAlgoDSA {
			v.add(path, "is an ssh-dss key, which OpenSSH refuses, expected an ed25519, ecdsa or RSA (>= 3072 bits) key")
			continue
		}
		if ck, ok := pub.(ssh.CryptoPublicKey); ok {
			if rk, ok := ck.CryptoPublicKey().(*rsa.PublicKey); ok && rk.N.BitLen() < 2048 {
				v.add(path, "is a %d-bit RSA key, expected at least 2048 bits (ed25519 is preferred)", rk.N.BitLen())
				continue
			}
		}
		fp := ssh.FingerprintSHA256(pub)
		if j, dup := seen[fp]; dup {
			v.add(path, "is the same key as %s.sshKeys[%d], expected each key once", k, j)
			continue
		}
		seen[fp] = i
	}
	const wideSSHBits = 8
	if len(a.SSHCidrs) == 0 {
		v.add(k+".sshCidrs", "missing, expected at least one network allowed to reach port 22, e.g. \"203.0.113.7/32\" (port 22 is closed to everyone else)")
	}
	for i, c := range a.SSHCidrs {
		path := fmt.Sprintf("%s.sshCidrs[%d]", k, i)
		p, err := netip.ParsePrefix(c)
		if err != nil {
			v.add(path, "got %q, expected a network in CIDR notation such as \"203.0.113.7/32\"", c)
			continue
		}
		if !p.Addr().Is4() {
			// The host firewalls and provider rules belay renders are IPv4; accepting
			// an IPv6 network here would only fail later, inside the renderer.
			v.add(path, "got %q, expected an IPv4 network (admin access over IPv6 is not supported yet)", c)
			continue
		}
		if p.Masked() != p {
			v.add(path, "got %q, expected the network address %q (host bits must be zero)", c, p.Masked().String())
			continue
		}
		// A typo such as /0 for /32 opens port 22 to the internet; wider than a
		// /8 must be meant, and said so.
		if p.Bits() < wideSSHBits && !a.AllowWideSSHCidrs {
			v.add(path, "got %q, wider than a /%d: expected a narrower network, or set %s.allowWideSshCidrs: true to open port 22 that widely", c, wideSSHBits, k)
		}
	}
	switch {
	case a.DeployUser == "":
		v.add(k+".deployUser", "empty, expected a Linux user name (default %q)", DefaultDeployUser)
	case !linuxUser.MatchString(a.DeployUser):
		v.add(k+".deployUser", "got %q, expected a Linux user name: lowercase letters, digits, '_' or '-', starting with a letter or '_', at most 32 characters", a.DeployUser)
	case slices.Contains(systemUsers, a.DeployUser):
		v.add(k+".deployUser", "got %q, a system account, expected a dedicated user such as %q", a.DeployUser, DefaultDeployUser)
	}
}
