package backup

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/cli"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/remote"
	"github.com/belay-sh/belay/remote/remotetest"
)

// exitErr is what a remote command exiting non-zero looks like to remote.ExitStatus.
type exitErr int

func (e exitErr) Error() string   { return fmt.Sprintf("Process exited with status %d", int(e)) }
func (e exitErr) ExitStatus() int { return int(e) }

// fakeStreamer answers root commands from a remotetest.Runner and streams
// scripted output for Stream.
type fakeStreamer struct {
	*remotetest.Runner
	streamed []string
	output   string
	err      error
	// after is called once the stream ends (the repository then holds the new backup).
	after func()
}

func (f *fakeStreamer) Stream(ctx context.Context, host, cmd string, stdout, stderr io.Writer) error {
	f.streamed = append(f.streamed, host+": "+cmd)
	io.WriteString(stdout, f.output)
	io.WriteString(stderr, "P00   INFO: backup command end: completed\n")
	if f.after != nil {
		f.after()
	}
	return f.err
}

const fullInfo = `{"label":"20260101-010000F","type":"full","timestamp":{"start":1,"stop":2}}`

func infoWith(backups ...string) []byte {
	return []byte(`[{"name":"belay","backup":[` + strings.Join(backups, ",") + `]}]`)
}

func newFake(t *testing.T, newBackup string, streamErr error) *fakeStreamer {
	t.Helper()
	backups := []string{fullInfo}
	f := &fakeStreamer{output: "P00   INFO: backup command begin\nP00   INFO: new backup label = x\n", err: streamErr}
	f.Runner = &remotetest.Runner{Handle: func(c remotetest.Call) ([]byte, error) {
		if c.Host != "backup" || !c.Root || c.Cmd != strings.Join(hostcmd.PgBackRestInfo("belay"), " ") {
			t.Errorf("unexpected call %s", c)
		}
		return infoWith(backups...), nil
	}}
	if newBackup != "" {
		f.after = func() { backups = append(backups, newBackup) }
	}
	return f
}

func runNowCmd(t *testing.T, fake Streamer, args ...string) (string, string, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	inv := testInv(t)
	f := &cli.Factory{IO: cli.IO{Out: &out, ErrOut: &errOut}, Getenv: func(string) string { return "" },
		Inventory: func(string) (*inventory.Inventory, error) { return inv, nil }}
	clock := time.Unix(1_700_000_000, 0)
	cmd := NewCmdNow(f, func(o *NowOptions) error {
		o.Hosts = fake
		o.Now = func() time.Time { clock = clock.Add(1500 * time.Millisecond); return clock }
		return runNow(context.Background(), o)
	})
	cmd.SetArgs(args)
	cmd.SetOut(&out)
	cmd.SetErr(&errOut)
	cmd.SilenceUsage = true
	err := cmd.Execute()
	return out.String(), errOut.String(), err
}

func TestBackupNow(t *testing.T) {
	diff := `{"label":"20260101-010000F_20260102-130000D","type":"diff","timestamp":{"start":3,"stop":4}}`
	sudo := func(kind string) string { return "backup: " + remote.SudoCommand(hostcmd.BackupNow(kind, "belay")) }

	t.Run("diff by default, progress streamed", func(t *testing.T) {
		fake := newFake(t, diff, nil)
		out, _, err := runNowCmd(t, fake)
		if err != nil {
			t.Fatal(err)
		}
		if len(fake.streamed) != 1 || fake.streamed[0] != sudo("diff") {
			t.Errorf("streamed %q, want %q", fake.streamed, sudo("diff"))
		}
		if !strings.Contains(out, "backup command begin") || !strings.Contains(out, "backup 20260101-010000F_20260102-130000D (diff) of stanza belay on backup done in 1.5s") {
			t.Errorf("output:\n%s", out)
		}
	})

	t.Run("full as JSON", func(t *testing.T) {
		full2 := `{"label":"20260103-010000F","type":"full","timestamp":{"start":5,"stop":6}}`
		fake := newFake(t, full2, nil)
		out, errOut, err := runNowCmd(t, fake, "--full", "--json")
		if err != nil {
			t.Fatal(err)
		}
		if fake.streamed[0] != sudo("full") {
			t.Errorf("streamed %q", fake.streamed)
		}
		var res NowResult
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("stdout is not the JSON result: %v\n%s", err, out)
		}
		if !res.OK || res.Label != "20260103-010000F" || res.Type != "full" || res.Requested != "full" || res.ExitCode != 0 || res.Seconds != 1.5 {
			t.Errorf("result %+v", res)
		}
		if !strings.Contains(errOut, "backup command begin") {
			t.Errorf("progress not on stderr with --json:\n%s", errOut)
		}
	})

	t.Run("backup fails: its exit status", func(t *testing.T) {
		fake := newFake(t, "", fmt.Errorf("host backup: `sudo …`: %w", exitErr(50)))
		_, errOut, err := runNowCmd(t, fake, "--full")
		var ee cli.ExitError
		if !errors.As(err, &ee) || ee.Code != 50 {
			t.Fatalf("error %v, want exit status 50", err)
		}
		if !strings.Contains(errOut, "backup failed on backup (exit status 50)") {
			t.Errorf("stderr:\n%s", errOut)
		}
	})

	t.Run("JSON result of a failure", func(t *testing.T) {
		fake := newFake(t, "", exitErr(1))
		out, _, err := runNowCmd(t, fake, "--json")
		var res NowResult
		if jerr := json.Unmarshal([]byte(out), &res); jerr != nil || res.OK || res.ExitCode != 1 {
			t.Errorf("result %+v (%v), err %v", res, jerr, err)
		}
	})

	t.Run("no connection: an error, not a result", func(t *testing.T) {
		fake := newFake(t, "", errors.New("host backup: dial: connection refused"))
		_, _, err := runNowCmd(t, fake)
		var ee cli.ExitError
		if err == nil || errors.As(err, &ee) || !strings.Contains(err.Error(), "connection refused") {
			t.Errorf("err %v", err)
		}
	})

	t.Run("succeeded but no new backup", func(t *testing.T) {
		fake := newFake(t, "", nil)
		_, errOut, err := runNowCmd(t, fake)
		var ee cli.ExitError
		if !errors.As(err, &ee) || ee.Code != 1 || !strings.Contains(errOut, "lists no new backup") {
			t.Errorf("err %v stderr %q", err, errOut)
		}
	})

	t.Run("--full and --diff", func(t *testing.T) {
		fake := newFake(t, "", nil)
		_, _, err := runNowCmd(t, fake, "--full", "--diff")
		if err == nil || len(fake.streamed) != 0 {
			t.Errorf("err %v, streamed %q", err, fake.streamed)
		}
	})
}

func TestBackupNowHelp(t *testing.T) {
	var out bytes.Buffer
	cmd := NewCmdBackup(&cli.Factory{IO: cli.IO{Out: &out, ErrOut: &out}})
	cmd.SetArgs([]string{"now", "--help"})
	cmd.SetOut(&out)
	if err := cmd.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"belay backup now --full --json", "sudo -n runuser -u pgbackrest -- " + hostcmd.BackupScript, "--diff"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("help lacks %q:\n%s", want, out.String())
		}
	}
}
