// Package hostexec is the root side of `belay exec`: on an app server, run one
// command as the app user (belay-app) with the environment the app's units
// get, in the current release directory.
//
// Why a root helper that drops to belay-app, rather than a sudoers line
// `(belay-app) NOPASSWD: ...` or systemd-run: the app's environment file holds
// the app's secrets and is read by root (systemd reads EnvironmentFile= as
// root), so it may be 0600 root; a command started as belay-app could not read
// it. The helper reads it as root, then — before it runs anything the caller
// chose — sets no_new_privs (sudo, su and setuid binaries cannot raise it
// again), drops every group and takes belay-app's uid and gid. The command
// stays in the SSH session (its PTY, its signals, its exit status), which
// systemd-run --pipe would not give. The app name is validated and must be
// installed on this host; nothing the caller passes reaches a shell.
package hostexec

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

// AppUser runs every release (roles.AppUser; this package sits below roles).
const AppUser = "belay-app"

// Paths is the host layout the helper reads (tests point it at a temp dir).
type Paths struct {
	// EnvDir holds <app>.env (roles.AppEnvFile).
	EnvDir string
	// SrvDir holds <app>/current -> releases/<id>.
	SrvDir string
}

// DefaultPaths is the layout the roles install.
var DefaultPaths = Paths{EnvDir: "/etc/belay", SrvDir: "/srv"}

// appRE is roles' app name rule.
var appRE = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,53}[a-z0-9])?$`)

// DefaultPath is the command search path of an exec (the units' systemd default).
const DefaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// Plan is what Exec runs: already validated, nothing left to decide.
type Plan struct {
	App     string
	Release string
	Dir     string
	Argv    []string
	Env     []string
}

// Prepare validates the request and reads the app's environment (as root).
func Prepare(p Paths, app string, argv []string) (*Plan, error) {
	if !appRE.MatchString(app) {
		return nil, fmt.Errorf("app %q: expected a lowercase app name (letter, then letters, digits, hyphens)", app)
	}
	if len(argv) == 0 || argv[0] == "" {
		return nil, errors.New("command: empty, expected the program to run and its arguments")
	}
	envFile := filepath.Join(p.EnvDir, app+".env")
	data, err := os.ReadFile(envFile)
	if err != nil {
		return nil, fmt.Errorf("app %s: not installed on this host: %w", app, err)
	}
	vars, err := ParseEnvFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", envFile, err)
	}
	releases := filepath.Join(p.SrvDir, app, "releases")
	dir, err := filepath.EvalSymlinks(filepath.Join(p.SrvDir, app, "current"))
	if err != nil {
		return nil, fmt.Errorf("app %s: no current release (deploy one first): %w", app, err)
	}
	if filepath.Dir(dir) != releases {
		return nil, fmt.Errorf("app %s: current points at %s, expected a directory in %s", app, dir, releases)
	}
	release := filepath.Base(dir)
	// The units' environment: the file's variables, then what belay-app-run
	// sets. PORT is left out on purpose: a one-off command must not look like
	// the server that owns the port.
	env := []string{"PATH=" + DefaultPath, "HOME=/nonexistent", "LANG=C.UTF-8", "USER=" + AppUser, "LOGNAME=" + AppUser}
	if t := os.Getenv("TERM"); t != "" {
		env = append(env, "TERM="+t)
	}
	env = append(env, vars...)
	env = append(env, "BELAY_RELEASE="+release, "BELAY_SLOT=exec")
	return &Plan{App: app, Release: release, Dir: dir, Argv: argv, Env: env}, nil
}

// ParseEnvFile reads a systemd EnvironmentFile: KEY=VALUE lines, # and ;
// comments, blank lines, values optionally in single or double quotes
// (double quotes honour \" \\ \$ \` and \n), a trailing backslash continues a
// line. It returns KEY=VALUE strings in file order.
func ParseEnvFile(data []byte) ([]string, error) {
	var out []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	n := 0
	var pending string
	for sc.Scan() {
		n++
		line := pending + sc.Text()
		pending = ""
		if strings.HasSuffix(line, `\`) && !strings.HasSuffix(line, `\\`) {
			pending = strings.TrimSuffix(line, `\`)
			continue
		}
		t := strings.TrimSpace(line)
		if t == "" || t[0] == '#' || t[0] == ';' {
			continue
		}
		k, v, ok := strings.Cut(t, "=")
		k = strings.TrimSpace(k)
		if !ok || !envKeyRE.MatchString(k) {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", n)
		}
		v, err := unquote(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("line %d (%s): %w", n, k, err)
		}
		out = append(out, k+"="+v)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if pending != "" {
		return nil, fmt.Errorf("line %d: continued past the end of the file", n)
	}
	return out, nil
}

var envKeyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func unquote(v string) (string, error) {
	if len(v) < 2 {
		return v, nil
	}
	switch q := v[0]; {
	case q == '\'' && v[len(v)-1] == '\'':
		return v[1 : len(v)-1], nil
	case q == '"' && v[len(v)-1] == '"':
		var b strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			c := in[i]
			if c != '\\' {
				b.WriteByte(c)
				continue
			}
			if i+1 == len(in) {
				return "", errors.New("value ends in a lone backslash")
			}
			i++
			switch in[i] {
			case 'n':
				b.WriteByte('\n')
			case '"', '\\', '$', '`', '\'':
				b.WriteByte(in[i])
			default:
				b.WriteByte('\\')
				b.WriteByte(in[i])
			}
		}
		return b.String(), nil
	case q == '"' || q == '\'':
		return "", errors.New("unterminated quote")
	}
	return v, nil
}
