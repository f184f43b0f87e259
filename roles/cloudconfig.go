package roles

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"fmt"
	"io"
	"strings"
)

// CloudConfig is the subset of cloud-init's #cloud-config that belay renders.
// Role contributors append to it; Render marshals it once. Only modules that
// cloud-init 22.4 (Debian 12) runs by default are used, and no module that
// reaches a network (packages are in the image, not installed at boot).
type CloudConfig struct {
	Hostname         string `yaml:"hostname"`
	PreserveHostname bool   `yaml:"preserve_hostname"`
	// ManageEtcHosts maps the hostname to 127.0.1.1: sudo resolves it on every
	// call, and without an entry waits on DNS the lab does not have.
	ManageEtcHosts bool       `yaml:"manage_etc_hosts,omitempty"`
	SSHPwauth      bool       `yaml:"ssh_pwauth"`
	DisableRoot    bool       `yaml:"disable_root"`
	SSHDeletekeys  bool       `yaml:"ssh_deletekeys"`
	SSHGenkeytypes []string   `yaml:"ssh_genkeytypes"`
	SSHKeys        *SSHKeys   `yaml:"ssh_keys,omitempty"`
	PackageUpdate  bool       `yaml:"package_update,omitempty"`
	Packages       []string   `yaml:"packages,omitempty"`
	Users          []any      `yaml:"users"`
	WriteFiles     []File     `yaml:"write_files"`
	Bootcmd        [][]string `yaml:"bootcmd,omitempty"`
	Runcmd         [][]string `yaml:"runcmd"`
	FinalMessage   string     `yaml:"final_message,omitempty"`
}

// SSHKeys pins the host key cloud-init installs (cc_ssh module).
type SSHKeys struct {
	Ed25519Private string `yaml:"ed25519_private"`
	Ed25519Public  string `yaml:"ed25519_public"`
}

// User is one cloud-init users entry.
type User struct {
	Name              string   `yaml:"name"`
	Gecos             string   `yaml:"gecos,omitempty"`
	Shell             string   `yaml:"shell,omitempty"`
	Groups            string   `yaml:"groups,omitempty"`
	System            bool     `yaml:"system,omitempty"`
	LockPasswd        bool     `yaml:"lock_passwd"`
	HomeDir           string   `yaml:"homedir,omitempty"`
	NoCreateHome      bool     `yaml:"no_create_home,omitempty"`
	SSHAuthorizedKeys []string `yaml:"ssh_authorized_keys,omitempty"`
}

// File is one write_files entry.
type File struct {
	Path        string `yaml:"path"`
	Content     string `yaml:"content"`
	Owner       string `yaml:"owner,omitempty"`
	Permissions string `yaml:"permissions"`
	// Defer writes the file after users are created (cloud-init >= 21.4), needed for non-root owners.
	Defer bool `yaml:"defer,omitempty"`
	// Encoding "gz+b64" marks Content as gzip then base64 (cloud-init decodes
	// it): large scripts are shipped so, because Hetzner caps user data at 32 KiB.
	Encoding string `yaml:"encoding,omitempty"`
}

// Text returns the file's content as it lands on disk.
func (f File) Text() (string, error) {
	if f.Encoding == "" {
		return f.Content, nil
	}
	if f.Encoding != gzB64 {
		return "", fmt.Errorf("%s: encoding %q, expected %q", f.Path, f.Encoding, gzB64)
	}
	raw, err := base64.StdEncoding.DecodeString(f.Content)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Path, err)
	}
	zr, err := gzip.NewReader(bytes.NewReader(raw))
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Path, err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		return "", fmt.Errorf("%s: %w", f.Path, err)
	}
	return string(b), nil
}

const gzB64 = "gz+b64"

// compressMin is the size from which a script is shipped gzip+base64: below
// it the base64 overhead eats the gain.
const compressMin = 1024

// compressFileMin is the size from which any file is shipped gzip+base64:
// the router's Lua map.conf (14 KB) and server blocks (8 KB) took a router
// with TLS to 41 KB of user data, over Hetzner's 32 KiB; an app's nginx
// configuration (5 KB) is next. Smaller configuration files stay plain, so
// the goldens show them as they land.
const compressFileMin = 4096

// compressScripts encodes the large scripts and files of c. gzip without a
// name or time in its header is deterministic, so the same Spec still gives
// the same bytes.
func compressScripts(c *CloudConfig) error {
	for i, f := range c.WriteFiles {
		script := strings.HasPrefix(f.Path, "/usr/local/bin/") || strings.HasPrefix(f.Path, "/usr/local/sbin/")
		if f.Encoding != "" || len(f.Content) < compressMin || !script && len(f.Content) < compressFileMin {
			continue
		}
		var buf bytes.Buffer
		zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if err != nil {
			return err
		}
		if _, err := zw.Write([]byte(f.Content)); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		c.WriteFiles[i].Content = base64.StdEncoding.EncodeToString(buf.Bytes())
		c.WriteFiles[i].Encoding = gzB64
	}
	return nil
}

// contributor adds one role's files, users and commands to the config.
type contributor func(s *Spec, c *CloudConfig) error
