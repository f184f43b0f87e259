package hostconverge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/belay-sh/belay/converge"
)

// Every file operation walks the target's directories from the root with
// O_NOFOLLOW and then works relative to the last directory's descriptor
// (openat, renameat, fchown): a symlink anywhere on the path is refused, and
// a user who owns a directory on it (the deploy user's home) cannot swap in a
// link between a check and the write.

const dirFlags = syscall.O_RDONLY | syscall.O_DIRECTORY | syscall.O_NOFOLLOW | syscall.O_CLOEXEC

// openDir opens directory p (absolute, under o.Root) without following links.
// With create, missing directories are made: root:root 0755, the last one
// with owner and mode (created lists those made).
func (o Options) openDir(p string, create bool, owner string, mode uint32, created *[]string) (int, error) {
	fd, err := syscall.Open(o.Root, dirFlags, 0)
	if err != nil {
		return -1, fmt.Errorf("root %s: %w", o.Root, err)
	}
	parts := strings.Split(strings.Trim(p, "/"), "/")
	if p == "/" {
		parts = nil
	}
	for i, part := range parts {
		if part == "" || part == "." || part == ".." {
			syscall.Close(fd)
			return -1, fmt.Errorf("%s: not a clean absolute path", p)
		}
		next, err := syscall.Openat(fd, part, dirFlags, 0)
		if err == syscall.ENOENT && create {
			ow, m := "root:root", uint32(0o755)
			if i == len(parts)-1 {
				ow, m = owner, mode
			}
			if err = syscall.Mkdirat(fd, part, 0o700); err == nil {
				next, err = syscall.Openat(fd, part, dirFlags, 0)
				if err == nil {
					err = o.fchown(next, ow)
				}
				if err == nil {
					err = syscall.Fchmod(next, m)
				}
				if err == nil && created != nil {
					*created = append(*created, "/"+strings.Join(parts[:i+1], "/"))
				}
			}
		}
		syscall.Close(fd)
		if err != nil {
			if err == syscall.ELOOP || err == syscall.ENOTDIR {
				return -1, fmt.Errorf("%s: /%s is a symlink or not a directory, refused", p, strings.Join(parts[:i+1], "/"))
			}
			return -1, fmt.Errorf("%s: /%s: %w", p, strings.Join(parts[:i+1], "/"), err)
		}
		fd = next
	}
	return fd, nil
}

// read returns the file's current state, nil when missing.
func (o Options) read(p string) (*converge.Current, error) {
	dfd, err := o.openDir(filepath.Dir(p), false, "", 0, nil)
	if errors.Is(err, syscall.ENOENT) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer syscall.Close(dfd)
	fd, err := syscall.Openat(dfd, filepath.Base(p), syscall.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err == syscall.ENOENT {
		return nil, nil
	}
	if err == syscall.ELOOP {
		return nil, fmt.Errorf("%s is a symlink, refused", p)
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	f := os.NewFile(uintptr(fd), p)
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: not a regular file, refused", p)
	}
	// A hard link is another file's content under a managed name (a dry run
	// would send it back): belay never makes one, so it is refused.
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Nlink > 1 {
		return nil, fmt.Errorf("%s: has %d hard links, refused", p, st.Nlink)
	}
	b, err := io.ReadAll(io.LimitReader(f, converge.MaxBundle))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", p, err)
	}
	return &converge.Current{Content: string(b), Owner: o.OwnerOf(p, fi), Mode: uint32(fi.Mode().Perm())}, nil
}

// write puts f in place atomically: a new file in the same directory, owner
// and mode set before it becomes visible under its name.
func (o Options) write(f converge.File) error {
	dfd, err := o.openDir(filepath.Dir(f.Path), true, "root:root", 0o755, nil)
	if err != nil {
		return err
	}
	defer syscall.Close(dfd)
	name := filepath.Base(f.Path)
	// The target, if any, must be a regular file (not a link, not a directory).
	var st unix.Stat_t
	if err := unix.Fstatat(dfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err == nil && st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fmt.Errorf("%s: not a regular file, refused", f.Path)
	}
	tmp := ".belay-converge." + name + ".tmp"
	_ = syscall.Unlinkat(dfd, tmp)
	fd, err := syscall.Openat(dfd, tmp, syscall.O_CREAT|syscall.O_EXCL|syscall.O_WRONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	fh := os.NewFile(uintptr(fd), tmp)
	_, err = fh.WriteString(f.Content)
	if err == nil {
		err = o.fchown(fd, f.Owner)
	}
	if err == nil {
		err = syscall.Fchmod(fd, f.Mode)
	}
	if err == nil {
		err = fh.Sync()
	}
	if cerr := fh.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = syscall.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		_ = syscall.Unlinkat(dfd, tmp)
		return fmt.Errorf("%s: %w", f.Path, err)
	}
	return nil
}

// remove deletes a file converge created (restore).
func (o Options) remove(p string) error {
	dfd, err := o.openDir(filepath.Dir(p), false, "", 0, nil)
	if err != nil {
		return err
	}
	defer syscall.Close(dfd)
	return syscall.Unlinkat(dfd, filepath.Base(p))
}

func (o Options) fchown(fd int, owner string) error {
	uid, gid, err := o.IDs(owner)
	if err != nil {
		return err
	}
	return syscall.Fchown(fd, uid, gid)
}

func (o Options) ensureDirs(dirs []converge.Dir, res *Result) error {
	for _, d := range dirs {
		fd, err := o.openDir(d.Path, true, d.Owner, d.Mode, &res.DirsCreated)
		if err != nil {
			return err
		}
		syscall.Close(fd)
	}
	return nil
}

func (o Options) ensureUsers(ctx context.Context, users []converge.User, res *Result) error {
	for _, u := range users {
		if o.UserExists(u.Name) {
			continue
		}
		argv := []string{"useradd", "--system", "--user-group", "--no-create-home", "--home-dir", u.Home, "--shell", u.Shell, "--comment", u.Gecos, u.Name}
		res.Ran = append(res.Ran, strings.Join(argv, " "))
		if out, err := o.Run(ctx, argv); err != nil {
			return fmt.Errorf("creating user %s: %w: %s", u.Name, err, strings.TrimSpace(out))
		}
		res.UsersCreated = append(res.UsersCreated, u.Name)
	}
	return nil
}

// idsByName resolves "user:group" to numeric ids.
func idsByName(owner string) (int, int, error) {
	un, gn, _ := strings.Cut(owner, ":")
	u, err := user.Lookup(un)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %s: %w", owner, err)
	}
	g, err := user.LookupGroup(gn)
	if err != nil {
		return 0, 0, fmt.Errorf("owner %s: %w", owner, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(g.Gid)
	return uid, gid, nil
}

func ownerName(_ string, fi os.FileInfo) string {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "?:?"
	}
	un, gn := strconv.Itoa(int(st.Uid)), strconv.Itoa(int(st.Gid))
	if u, err := user.LookupId(un); err == nil {
		un = u.Username
	}
	if g, err := user.LookupGroupId(gn); err == nil {
		gn = g.Name
	}
	return un + ":" + gn
}

func userExists(name string) bool {
	_, err := user.Lookup(name)
	return err == nil
}
