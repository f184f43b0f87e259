package lab

import (
	"bufio"
	"context"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

//go:embed build-image.sh
var buildScript string

// ImagePackages are installed into the lab image on top of debootstrap's minbase:
// everything a belay role runs, because lab machines have no route to a mirror.
var ImagePackages = []string{
	"openssh-server", "openssh-client", "sudo", "nftables", "keepalived", "nginx-light", "libnginx-mod-http-lua",
	"postgresql-15", "postgresql-15-auto-failover", "pg-auto-failover-cli", "pgbackrest", "restic",
	"cloud-init", "curl", "ca-certificates", "procps", "lego", "openssl", "iputils-ping", "netbase", "locales",
}

// Mirrors are the Debian archive URLs the image is built from.
type Mirrors struct {
	Debian   string
	Security string
}

// Image is a built, cached machine image.
type Image struct {
	Key    string `json:"key"` // hash of the build inputs
	RootFS string `json:"rootfs"`
	// Cached is true when no build was needed.
	Cached   bool          `json:"cached"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
}

// imageKey hashes everything that changes the image's content, so editing the
// package list or the build script gives a new cache entry.
func imageKey(script string, pkgs []string, m Mirrors) string {
	h := sha256.New()
	fmt.Fprintf(h, "belay lab image v1\x00%s\x00%s\x00%s\x00%s", script, strings.Join(pkgs, " "), m.Debian, m.Security)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// EnsureImage returns the cached image for the current inputs, building it first
// (several minutes) when there is none. Build output goes to log.
func EnsureImage(ctx context.Context, p Paths, m Mirrors, log io.Writer) (*Image, error) {
	start := time.Now()
	key := imageKey(buildScript, ImagePackages, m)
	dir := filepath.Join(p.Cache, "images", key)
	img := &Image{Key: key, RootFS: filepath.Join(dir, "rootfs")}
	if _, err := os.Stat(filepath.Join(dir, "complete")); err == nil {
		img.Cached = true
		img.Duration = time.Since(start)
		img.Seconds = img.Duration.Seconds()
		return img, nil
	}
	tmp := dir + ".building"
	if err := os.RemoveAll(tmp); err != nil {
		return nil, fmt.Errorf("lab image: clear %s: %w", tmp, err)
	}
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return nil, fmt.Errorf("lab image: %w", err)
	}
	script := filepath.Join(tmp, "build-image.sh")
	if err := os.WriteFile(script, []byte(buildScript), 0o755); err != nil {
		return nil, fmt.Errorf("lab image: %w", err)
	}
	logPath := filepath.Join(tmp, "build.log")
	lf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("lab image: %w", err)
	}
	defer lf.Close()
	c := exec.CommandContext(ctx, "/bin/sh", script, filepath.Join(tmp, "rootfs"))
	c.Env = append(os.Environ(),
		"BELAY_MIRROR="+m.Debian, "BELAY_SECURITY_MIRROR="+m.Security,
		"BELAY_PACKAGES="+strings.Join(ImagePackages, " "),
		"BELAY_DEB_CACHE="+filepath.Join(p.Cache, "debs"),
		"LANG=C.UTF-8")
	// The full apt output goes to the log file; only the script's own "==" steps reach the user.
	pr, pw := io.Pipe()
	c.Stdout, c.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64*1024), 1024*1024)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(lf, line)
			if strings.HasPrefix(line, "== ") && log != nil {
				fmt.Fprintf(log, "[image] %s\n", strings.TrimPrefix(line, "== "))
			}
		}
	}()
	err = c.Run()
	pw.Close()
	<-done
	if err != nil {
		return nil, fmt.Errorf("lab image build failed (%w); last lines of %s:\n%s", err, logPath, tailFile(logPath, 25))
	}
	if err := os.WriteFile(filepath.Join(tmp, "complete"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("lab image: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return nil, fmt.Errorf("lab image: %w", err)
	}
	img.Duration = time.Since(start)
	img.Seconds = img.Duration.Seconds()
	return img, nil
}

// pruneImages removes cached images other than keep (their machines are gone by then).
func pruneImages(p Paths, keep string) {
	entries, _ := os.ReadDir(filepath.Join(p.Cache, "images"))
	for _, e := range entries {
		if e.IsDir() && e.Name() != keep {
			_ = os.RemoveAll(filepath.Join(p.Cache, "images", e.Name()))
		}
	}
}

// DetectMirrors reads the host's APT sources (deb822 .sources and one-line .list)
// for the Debian and Debian security archives, defaulting to deb.debian.org.
func DetectMirrors(dir string) Mirrors {
	m := Mirrors{}
	files, _ := filepath.Glob(filepath.Join(dir, "sources.list.d", "*.sources"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, para := range strings.Split(string(b), "\n\n") {
			fields := map[string]string{}
			for _, line := range strings.Split(para, "\n") {
				if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
					fields[strings.TrimSpace(k)] = strings.TrimSpace(v)
				}
			}
			uris := strings.Fields(fields["URIs"])
			if len(uris) == 0 || !strings.Contains(fields["Components"], "main") {
				continue
			}
			for _, suite := range strings.Fields(fields["Suites"]) {
				m.take(uris[0], suite)
			}
		}
	}
	lists, _ := filepath.Glob(filepath.Join(dir, "sources.list.d", "*.list"))
	lists = append([]string{filepath.Join(dir, "sources.list")}, lists...)
	for _, f := range lists {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			fs := strings.Fields(line)
			if len(fs) >= 3 && fs[0] == "deb" {
				i := 1
				if strings.HasPrefix(fs[1], "[") { // options like [signed-by=...]
					for i < len(fs) && !strings.HasSuffix(fs[i], "]") {
						i++
					}
					i++
				}
				if i+1 < len(fs) {
					m.take(fs[i], fs[i+1])
				}
			}
		}
	}
	if m.Debian == "" {
		m.Debian = "http://deb.debian.org/debian"
	}
	if m.Security == "" {
		m.Security = "http://deb.debian.org/debian-security"
	}
	return m
}

func (m *Mirrors) take(uri, suite string) {
	switch suite {
	case "bookworm":
		if m.Debian == "" {
			m.Debian = uri
		}
	case "bookworm-security":
		if m.Security == "" {
			m.Security = uri
		}
	}
}

func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
