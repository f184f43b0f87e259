// Package converge is the pure core of `belay converge`: it turns the user
// data roles.Render produced for a host into the files, users and directories
// that host must have, compares them with what the host has, and says which
// checks and reloads each change needs. It never renders anything itself: the
// roles are the only renderer, so converge and first boot cannot disagree.
package converge

import (
	"fmt"
	"path"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/roles"
)

// File is one file as it must be on the host.
type File struct {
	Path    string `json:"path"`
	Content string `json:"content"`
	// Owner is "user:group" (cloud-init's default root:root when the roles name none).
	Owner string `json:"owner"`
	// Mode is the permission bits, e.g. 0o644.
	Mode uint32 `json:"mode"`
}

// User is a system user the roles create at first boot (e.g. an app's
// chrooted restic user on the backup host); converge creates missing ones.
type User struct {
	Name  string `json:"name"`
	Gecos string `json:"gecos,omitempty"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
}

// Dir is a directory the roles create at first boot (runcmd `install -d`);
// converge creates missing ones and never changes existing ones.
type Dir struct {
	Path  string `json:"path"`
	Owner string `json:"owner"`
	Mode  uint32 `json:"mode"`
}

// Host is everything converge manages on one host.
type Host struct {
	Name  string `json:"name"`
	Files []File `json:"files"`
	Users []User `json:"users,omitempty"`
	Dirs  []Dir  `json:"dirs,omitempty"`
}

// FromUserData reads the #cloud-config roles.Render produced for host into
// the files converge manages: every write_files entry (decoded) except the
// ones the roles only seed (Effects' Skip), the authorized_keys of users with
// keys, the system users the roles create, and `install -d` directories.
func FromUserData(host string, userData []byte) (Host, error) {
	var c roles.CloudConfig
	if err := yaml.Unmarshal(userData, &c); err != nil {
		return Host{}, fmt.Errorf("%s: user data: %w", host, err)
	}
	h := Host{Name: host}
	for _, f := range c.WriteFiles {
		if EffectOf(f.Path).Skip {
			continue
		}
		text, err := f.Text()
		if err != nil {
			return Host{}, fmt.Errorf("%s: write_files: %w", host, err)
		}
		mode, err := parseMode(f.Permissions)
		if err != nil {
			return Host{}, fmt.Errorf("%s: write_files %s: permissions: %w", host, f.Path, err)
		}
		owner := f.Owner
		if owner == "" {
			owner = "root:root"
		}
		h.Files = append(h.Files, File{Path: f.Path, Content: text, Owner: owner, Mode: mode})
	}
	for i, raw := range c.Users {
		b, err := yaml.Marshal(raw)
		if err != nil {
			return Host{}, fmt.Errorf("%s: users[%d]: %w", host, i, err)
		}
		var u roles.User
		if err := yaml.Unmarshal(b, &u); err != nil {
			return Host{}, fmt.Errorf("%s: users[%d]: %w", host, i, err)
		}
		home := u.HomeDir
		if home == "" {
			home = "/home/" + u.Name
		}
		if len(u.SSHAuthorizedKeys) > 0 {
			// cloud-init's cc_users_groups writes these; converge keeps them
			// current (an admin key added or removed in belay:admin.sshKeys).
			h.Files = append(h.Files, File{
				Path:    home + "/.ssh/authorized_keys",
				Content: strings.Join(u.SSHAuthorizedKeys, "\n") + "\n",
				Owner:   u.Name + ":" + u.Name, Mode: 0o600,
			})
		}
		if u.System {
			shell := u.Shell
			if shell == "" {
				shell = "/usr/sbin/nologin"
			}
			h.Users = append(h.Users, User{Name: u.Name, Gecos: u.Gecos, Home: home, Shell: shell})
		}
	}
	for _, argv := range c.Runcmd {
		// A directory under /run is runtime state, not configuration: the
		// router role makes /run/belay-router once at first boot only so its
		// first nginx -t can bind; from then on nginx.service's
		// RuntimeDirectory= creates and removes it at each start and stop.
		if d, ok := installDir(argv); ok && !strings.HasPrefix(d.Path, "/run/") {
			h.Dirs = append(h.Dirs, d)
		}
	}
	sort.Slice(h.Files, func(i, j int) bool { return h.Files[i].Path < h.Files[j].Path })
	for i := 1; i < len(h.Files); i++ {
		if h.Files[i].Path == h.Files[i-1].Path {
			return Host{}, fmt.Errorf("%s: %s is rendered twice", host, h.Files[i].Path)
		}
	}
	for _, f := range h.Files {
		if !Allowed(f.Path) {
			return Host{}, fmt.Errorf("%s: the roles render %s, which converge does not manage (add it to converge's allowed paths)", host, f.Path)
		}
	}
	return h, nil
}

// installDir recognises the roles' `install -d -m MODE -o USER -g GROUP PATH`.
func installDir(argv []string) (Dir, bool) {
	if len(argv) != 9 || argv[0] != "install" || argv[1] != "-d" || argv[2] != "-m" || argv[4] != "-o" || argv[6] != "-g" {
		return Dir{}, false
	}
	mode, err := parseMode(argv[3])
	if err != nil || !path.IsAbs(argv[8]) {
		return Dir{}, false
	}
	return Dir{Path: path.Clean(argv[8]), Owner: argv[5] + ":" + argv[7], Mode: mode}, true
}

func parseMode(s string) (uint32, error) {
	if s == "" {
		return 0o644, nil // cloud-init's default
	}
	m, err := strconv.ParseUint(s, 8, 32)
	if err != nil || m > 0o7777 {
		return 0, fmt.Errorf("%q: expected an octal mode", s)
	}
	return uint32(m), nil
}
