package hostexec

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// prSetNoNewPrivs is PR_SET_NO_NEW_PRIVS (linux/prctl.h).
const prSetNoNewPrivs = 38

// Exec replaces this process with the plan's command running as userName
// (AppUser in production): no_new_privs, no supplementary groups, the user's
// gid and uid, the release directory, the plan's environment. It returns only
// on failure, before the command ran.
func Exec(p *Plan, userName string) error {
	u, err := user.Lookup(userName)
	if err != nil {
		return fmt.Errorf("user %s: %w", userName, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return fmt.Errorf("user %s: uid %q: %w", userName, u.Uid, err)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return fmt.Errorf("user %s: gid %q: %w", userName, u.Gid, err)
	}
	if uid == 0 || gid == 0 {
		return fmt.Errorf("user %s: uid/gid 0: refusing to run a command as root", userName)
	}
	// prctl is per thread and exec happens on this one.
	runtime.LockOSThread()
	if _, _, e := syscall.RawSyscall(syscall.SYS_PRCTL, prSetNoNewPrivs, 1, 0); e != 0 {
		return fmt.Errorf("prctl(PR_SET_NO_NEW_PRIVS): %w", e)
	}
	// Go applies these to every thread (Linux, Go >= 1.16). Order: groups and
	// gid while still root, uid last.
	if err := syscall.Setgroups([]int{}); err != nil {
		return fmt.Errorf("setgroups: %w", err)
	}
	if err := syscall.Setresgid(gid, gid, gid); err != nil {
		return fmt.Errorf("setresgid %d: %w", gid, err)
	}
	if err := syscall.Setresuid(uid, uid, uid); err != nil {
		return fmt.Errorf("setresuid %d: %w", uid, err)
	}
	if syscall.Geteuid() == 0 || syscall.Getuid() == 0 {
		return fmt.Errorf("still root after dropping to %s: refusing to run the command", userName)
	}
	if err := os.Chdir(p.Dir); err != nil {
		return fmt.Errorf("release directory %s as %s: %w", p.Dir, userName, err)
	}
	path, err := lookPath(p.Argv[0], envValue(p.Env, "PATH"))
	if err != nil {
		return err
	}
	if err := syscall.Exec(path, p.Argv, p.Env); err != nil {
		return fmt.Errorf("exec %s as %s: %w", path, userName, err)
	}
	return nil
}

// lookPath finds a program as the command's user would: a name with a slash
// as given (relative to the release directory), else along PATH.
func lookPath(name, path string) (string, error) {
	if strings.Contains(name, "/") {
		if err := executable(name); err != nil {
			return "", fmt.Errorf("command %s: %w", name, err)
		}
		return name, nil
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, name)
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("command %s: not found in PATH %s", name, path)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("not an executable file")
	}
	return nil
}

func envValue(env []string, key string) string {
	v := ""
	for _, kv := range env {
		if k, val, ok := strings.Cut(kv, "="); ok && k == key {
			v = val
		}
	}
	return v
}
