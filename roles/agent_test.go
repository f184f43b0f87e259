package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestAgentInstallScript runs the script first boot and converge share with
// the real sh, sed and sha256sum (curl is a double that serves a local file
// and records that it ran): a matching binary is installed, a mismatching one
// refused with the old binary kept, and an installed match downloads nothing.
func TestAgentInstallScript(t *testing.T) {
	for _, tool := range []string{"sh", "sed", "sha256sum"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed", tool)
		}
	}
	newBin := []byte("#!/bin/sh\necho belay v2\n")
	sum := sha256.Sum256(newBin)
	good := hex.EncodeToString(sum[:])
	cases := []struct {
		name      string
		sha       string
		installed string // current binary's content ("" none)
		wantErr   bool
		wantBin   string
		wantCurl  bool
	}{
		{"fresh install", good, "", false, string(newBin), true},
		{"upgrade", good, "old", false, string(newBin), true},
		{"checksum mismatch keeps the old binary", strings.Repeat("ab", 32), "old", true, "old", true},
		{"already installed: no download", good, string(newBin), false, string(newBin), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			bin := filepath.Join(dir, "belay")
			conf := filepath.Join(dir, "agent")
			served := filepath.Join(dir, "served")
			marker := filepath.Join(dir, "curl-ran")
			must(t, os.WriteFile(served, newBin, 0o644))
			if c.installed != "" {
				must(t, os.WriteFile(bin, []byte(c.installed), 0o755))
			}
			s := &Agent{URL: "https://example.com/belay-linux-amd64", SHA256: c.sha}
			must(t, os.WriteFile(conf, []byte(agentFile(s).Content), 0o644))
			fake := filepath.Join(dir, "path")
			must(t, os.MkdirAll(fake, 0o755))
			// curl double: `-o FILE URL` copies the served file, nothing else.
			must(t, os.WriteFile(filepath.Join(fake, "curl"), []byte("#!/bin/sh\ntouch "+marker+"\nwhile [ $# -gt 0 ]; do case $1 in -o) out=$2; shift;; esac; shift; done\ncp "+served+" \"$out\"\n"), 0o755))
			script := strings.NewReplacer(AgentFile, conf, agentPath, bin).Replace(AgentInstallScript)
			cmd := exec.Command("sh", "-ec", script, AgentInstallName)
			cmd.Env = append(os.Environ(), "PATH="+fake+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if (err != nil) != c.wantErr {
				t.Fatalf("err = %v, want error %v\n%s", err, c.wantErr, out)
			}
			got, _ := os.ReadFile(bin)
			if string(got) != c.wantBin {
				t.Errorf("binary = %q, want %q", got, c.wantBin)
			}
			if _, err := os.Stat(marker); (err == nil) != c.wantCurl {
				t.Errorf("curl ran = %v, want %v", err == nil, c.wantCurl)
			}
			if _, err := os.Stat(bin + ".download"); err == nil {
				t.Error("the download was left behind")
			}
			if c.wantErr && !strings.Contains(string(out), "does not match sha256") {
				t.Errorf("output %q does not say the checksum did not match", out)
			}
		})
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
