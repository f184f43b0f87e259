package roles

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
}

// contributor adds one role's files, users and commands to the config.
type contributor func(s *Spec, c *CloudConfig) error
