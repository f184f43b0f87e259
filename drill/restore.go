package drill

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/hostcmd"
	"github.com/belay-sh/belay/internal/shq"
)

// VerifyResult is the repository host's last restore verification (roles/backup.go writes it).
type VerifyResult struct {
	Time            time.Time `json:"time"`
	BackupLabel     string    `json:"backupLabel"`
	OK              bool      `json:"ok"`
	Details         string    `json:"details"`
	CanaryRows      *int      `json:"canaryRows"`
	DurationSeconds int       `json:"durationSeconds"`
}

// ErrNeverVerified means the result file holds no verification yet (the
// repository host writes a placeholder at boot).
var ErrNeverVerified = errors.New("no restore verification has run yet")

// ParseVerifyResult decodes the verification result file.
func ParseVerifyResult(b []byte) (*VerifyResult, error) {
	if strings.TrimSpace(string(b)) == "" {
		return nil, fmt.Errorf("%s is empty: %w", VerifyResultFile, ErrNeverVerified)
	}
	var probe struct {
		Time string `json:"time"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return nil, fmt.Errorf("%s: %w", VerifyResultFile, err)
	}
	if probe.Time == "" {
		return nil, fmt.Errorf("%s: %w", VerifyResultFile, ErrNeverVerified)
	}
	var v VerifyResult
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", VerifyResultFile, err)
	}
	return &v, nil
}

// BackupInfo is the part of `pgbackrest info --output=json` belay reads.
type BackupInfo struct {
	Name   string `json:"name"`
	Status struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"status"`
	Archive []struct {
		ID  string `json:"id"`
		Max string `json:"max"`
		Min string `json:"min"`
	} `json:"archive"`
	Backup []struct {
		Label     string `json:"label"`
		Type      string `json:"type"`
		Timestamp struct {
			Start int64 `json:"start"`
			Stop  int64 `json:"stop"`
		} `json:"timestamp"`
		Archive struct {
			Start string `json:"start"`
			Stop  string `json:"stop"`
		} `json:"archive"`
		Error *bool `json:"error"`
	} `json:"backup"`
}

// ParseBackupInfo decodes `pgbackrest info --output=json` for stanza.
func ParseBackupInfo(b []byte, stanza string) (*BackupInfo, error) {
	var all []BackupInfo
	if err := json.Unmarshal(b, &all); err != nil {
		return nil, fmt.Errorf("pgbackrest info: not the expected JSON: %w", err)
	}
	for i := range all {
		if all[i].Name == stanza {
			return &all[i], nil
		}
	}
	return nil, fmt.Errorf("pgbackrest info: stanza %q not in the repository", stanza)
}

// LatestBackup returns the newest backup's label and type ("" when none).
func (bi *BackupInfo) LatestBackup() (label, typ string) {
	if len(bi.Backup) == 0 {
		return "", ""
	}
	last := bi.Backup[len(bi.Backup)-1]
	return last.Label, last.Type
}

// ValidLabel reports whether s looks like a pgBackRest backup label
// (20240101-010000F, 20240101-010000F_20240102-130000D), so it is safe in a path.
func ValidLabel(s string) bool {
	if len(s) < 16 || len(s) > 40 {
		return false
	}
	for _, r := range s {
		if !(r >= '0' && r <= '9' || r == '-' || r == '_' || r == 'F' || r == 'D' || r == 'I') {
			return false
		}
	}
	return true
}

func restoreRun(ctx context.Context, env *Env, s *stepper, variant string) Run {
	r := Run{Started: time.Now().UTC()}
	repo := env.Inv.Backup.Host
	stanza := env.Inv.Backup.Stanza
	if repo == "" || stanza == "" {
		return failRun(r, fmt.Errorf("inventory backup.host/backup.stanza: empty; the stack has no backup repository"))
	}
	info := func() (*BackupInfo, error) {
		out, err := env.Hosts.RunRoot(ctx, repo, hostcmd.PgBackRestInfo(stanza)...)
		if err != nil {
			return nil, err
		}
		return ParseBackupInfo(out, stanza)
	}
	var label string
	if err := s.do("backup", "", func() error {
		bi, err := info()
		if err != nil {
			return err
		}
		if label, _ = bi.LatestBackup(); label == "" || variant == "corrupt" {
			// The corrupt variant ruins a fresh backup of its own, never an older one someone may need.
			s.note("taking a full backup")
			if _, err := env.Hosts.RunRoot(ctx, repo, hostcmd.StartUnit(hostcmd.FullBackupUnit)...); err != nil {
				return err
			}
			if bi, err = info(); err != nil {
				return err
			}
			label, _ = bi.LatestBackup()
		}
		if label == "" {
			return fmt.Errorf("the repository still holds no backup of stanza %s", stanza)
		}
		s.note("latest backup %s", label)
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	// verify runs the verification unit and returns its result (also when it failed).
	verify := func() (*VerifyResult, error) {
		start := time.Now().Add(-2 * time.Second)
		_, unitErr := env.Hosts.RunRoot(ctx, repo, hostcmd.StartUnit(hostcmd.VerifyUnit)...)
		out, err := env.Hosts.Run(ctx, repo, shq.Join("cat", "--", VerifyResultFile))
		if err != nil {
			return nil, err
		}
		v, err := ParseVerifyResult(out)
		if err != nil {
			return nil, err
		}
		if v.Time.Before(start.Truncate(time.Second)) {
			return nil, fmt.Errorf("the verification did not write a new result (last %s; unit: %v)", v.Time.Format(time.RFC3339), unitErr)
		}
		if v.OK != (unitErr == nil) {
			return nil, fmt.Errorf("the unit's exit (%v) disagrees with the result ok=%v", unitErr, v.OK)
		}
		return v, nil
	}
	if variant != "corrupt" {
		if err := s.do("verify", "", func() error {
			v, err := verify()
			if err != nil {
				return err
			}
			r.Recovery = time.Duration(v.DurationSeconds) * time.Second
			r.Notes = append(r.Notes, fmt.Sprintf("backup %s: %s", v.BackupLabel, v.Details))
			if !v.OK {
				return fmt.Errorf("restore verification FAILED: %s", v.Details)
			}
			return nil
		}); err != nil {
			return failRun(r, err)
		}
		r.OK = true
		return r
	}
	if err := s.do("baseline", label, func() error {
		v, err := verify()
		if err != nil {
			return err
		}
		if !v.OK {
			return fmt.Errorf("the fresh backup %s does not verify even before the corruption: %s", v.BackupLabel, v.Details)
		}
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	var file string
	if err := s.do("corrupt", label, func() error {
		if !ValidLabel(label) {
			return fmt.Errorf("backup label %q: unexpected shape", label)
		}
		// The standby site restores from the latest backup: never corrupt it
		// while the standby is being (re)seeded (seen in the lab: its restore
		// failed on the corrupted file and gave up).
		// On a new stack the standby polls (every 5 s) for the first backup and
		// then restores from it: wait that out,
		// bounded, rather than refuse — the backup step above may be the first.
		if sb := env.Inv.Database.Standby; sb != "" {
			wait, poll := env.SeedWait, 5*time.Second
			if wait <= 0 {
				wait = StandbySeedWait
			}
			if poll > wait {
				poll = wait
			}
			deadline := time.Now().Add(wait)
			for said := false; ; said = true {
				out, err := env.Hosts.RunRoot(ctx, sb, hostcmd.StandbyRestoreState()...)
				if err != nil {
					return fmt.Errorf("cannot tell whether %s is restoring from the repository: %w", sb, err)
				}
				if strings.TrimSpace(string(out)) != "running" {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s is still seeding from the repository after %s (%s); run this drill once it has finished", sb, wait, hostcmd.StandbyRestoreUnit)
				}
				if !said {
					fmt.Fprintf(env.Progress, "drill restore/corrupt:   %s is seeding from the repository (%s); waiting for it first\n", sb, hostcmd.StandbyRestoreUnit)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(poll):
				}
			}
		}
		dir := path.Join(hostcmd.PgBackRestRepo, "backup", stanza, label, "pg_data")
		out, err := env.Hosts.RunRoot(ctx, repo, "sh", "-c", largestFileCmd(dir))
		if err != nil {
			return err
		}
		sz, name, ok := parseLargestFile(out)
		if !ok {
			return fmt.Errorf("no file to corrupt under %s (got %q)", dir, out)
		}
		size, err := strconv.ParseInt(sz, 10, 64)
		if err != nil {
			return err
		}
		file = name
		_, err = env.Hosts.RunRoot(ctx, repo, "dd", "if=/dev/urandom", "of="+file, "bs=1", "count=32", fmt.Sprintf("seek=%d", size/2), "conv=notrunc")
		s.note("corrupted %s (%d bytes) at offset %d", file, size, size/2)
		return err
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("verify", "must fail", func() error {
		v, err := verify()
		if err != nil {
			return err
		}
		r.Detection = time.Duration(v.DurationSeconds) * time.Second
		if v.OK {
			return fmt.Errorf("corruption NOT caught: verification of %s passed with %s corrupted", v.BackupLabel, file)
		}
		r.Notes = append(r.Notes, "corruption caught: "+v.Details)
		s.note("caught: %s", v.Details)
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	if err := s.do("heal", "", func() error {
		if _, err := env.Hosts.RunRoot(ctx, repo, hostcmd.StartUnit(hostcmd.FullBackupUnit)...); err != nil {
			return err
		}
		bi, err := info()
		if err != nil {
			return err
		}
		fresh, _ := bi.LatestBackup()
		if fresh == label {
			return fmt.Errorf("no new backup after %s", label)
		}
		if _, err := env.Hosts.RunRoot(ctx, repo, hostcmd.PgBackRest(stanza, "--set="+label, "expire")...); err != nil {
			return fmt.Errorf("expire corrupted backup %s: %w", label, err)
		}
		v, err := verify()
		if err != nil {
			return err
		}
		r.Recovery = time.Duration(v.DurationSeconds) * time.Second
		if !v.OK {
			return fmt.Errorf("verification after the new full backup %s FAILED: %s", fresh, v.Details)
		}
		r.Notes = append(r.Notes, fmt.Sprintf("healed: new full %s verified (%s); corrupted %s expired", fresh, v.Details, label))
		return nil
	}); err != nil {
		return failRun(r, err)
	}
	r.OK = true
	return r
}

// largestFileCmd prints "SIZE PATH" and a NUL of the largest file over 1 KiB
// under dir (the file the corrupt drill damages). NUL-terminated: a path may
// hold any byte but NUL, a newline included.
func largestFileCmd(dir string) string {
	return shq.Join("find", dir, "-type", "f", "-size", "+1k", "-printf", `%s %p\0`) + " | sort -rzn | head -zn 1"
}

// parseLargestFile splits largestFileCmd's output.
func parseLargestFile(out []byte) (size, path string, ok bool) {
	rec, _, _ := strings.Cut(string(out), "\x00")
	size, path, ok = strings.Cut(rec, " ")
	return size, path, ok && size != "" && path != ""
}
