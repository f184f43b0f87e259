package roles

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// backupSpecCells is the repository host of abBackupSpec with n dedicated
// cells' pairs (stanzas shop_c2, shop_c3, ...), each with the client keys of
// its two data nodes and of its standby-site database.
func backupSpecCells(t testing.TB, n int) *Spec {
	t.Helper()
	s := abBackupSpec(t)
	for i := 0; i < n; i++ {
		cell := fmt.Sprintf("c%d", i+2)
		st := BackupStanza{Stanza: "shop_" + cell}
		for j := 1; j <= 2; j++ {
			name := fmt.Sprintf("shop-%s-db-%d", cell, j)
			st.DBHosts = append(st.DBHosts, KnownHost{Name: name, Address: fmt.Sprintf("10.213.0.%d", 220+2*i+j), HostKey: abKey(t, "host-"+name).Public})
			st.ClientKeys = append(st.ClientKeys, abKey(t, "pg-client-"+name).Public)
		}
		st.ClientKeys = append(st.ClientKeys, abKey(t, "pg-client-shop-"+cell+"-standby-db").Public)
		s.Backup.Cells = append(s.Backup.Cells, st)
	}
	return s
}

// TestBackupStanzas renders the repository host with 0, 1 and 2 dedicated
// cells: every stanza has its config section, list line, pinned host keys
// and client keys bound to it; the scripts and units are the same bytes
// whatever the number of cells; the user data grows by a bounded amount per
// cell (Hetzner caps it at 32 KiB).
func TestBackupStanzas(t *testing.T) {
	var sizes []int
	var scripts map[string]string
	for n := 0; n <= 2; n++ {
		s := backupSpecCells(t, n)
		c, raw := renderParsed(t, s)
		sizes = append(sizes, len(raw))
		conf := fileAt(t, c, "/etc/pgbackrest/pgbackrest.conf").Content
		list := fileAt(t, c, PgBackRestStanzasFile).Content
		ak := fileAt(t, c, pgBackRestHome+"/.ssh/authorized_keys").Content
		kh := fileAt(t, c, pgBackRestHome+"/.ssh/known_hosts").Content
		if !strings.HasPrefix(list, "belay 10.213.0.10 10.213.0.11\n") || strings.Count(list, "\n") != 1+n {
			t.Errorf("%d cells: stanza list\n%s", n, list)
		}
		if strings.Count(ak, `command="`+remoteWrapper+` belay" `) != 3 {
			t.Errorf("%d cells: the stack's 3 client keys are not bound to stanza belay:\n%s", n, ak)
		}
		for _, st := range s.Backup.Cells {
			if !strings.Contains(conf, "\n["+st.Stanza+"]\n# "+st.DBHosts[0].Name+"\npg1-host="+st.DBHosts[0].Address+"\n") || !strings.Contains(conf, "pg2-host="+st.DBHosts[1].Address+"\n") {
				t.Errorf("%d cells: pgbackrest.conf lacks stanza %s's section:\n%s", n, st.Stanza, conf)
			}
			if !strings.Contains(list, st.Stanza+" "+st.DBHosts[0].Address+" "+st.DBHosts[1].Address+"\n") {
				t.Errorf("%d cells: stanza list lacks %s:\n%s", n, st.Stanza, list)
			}
			for i, k := range st.ClientKeys {
				if !strings.Contains(ak, `restrict,command="`+remoteWrapper+` `+st.Stanza+`" `+strings.TrimSpace(k)+"\n") {
					t.Errorf("%d cells: client key %d of %s not bound to its stanza:\n%s", n, i, st.Stanza, ak)
				}
				if i >= len(st.DBHosts) {
					continue // the standby database's key: no host of the stanza list
				}
				if h := st.DBHosts[i]; !strings.Contains(kh, h.Address+" "+strings.TrimSpace(h.HostKey)+"\n") {
					t.Errorf("%d cells: known_hosts lacks %s", n, h.Name)
				}
			}
		}
		got := map[string]string{}
		for _, f := range c.WriteFiles {
			if strings.HasPrefix(f.Path, "/usr/local/") || strings.HasPrefix(f.Path, "/etc/systemd/") || f.Path == "/etc/pgbackrest/verify.conf" {
				got[f.Path] = f.Content
			}
		}
		if scripts == nil {
			scripts = got
			continue
		}
		for p, text := range got {
			if scripts[p] != text {
				t.Errorf("%s differs with %d cells: scripts and units must not carry per-stanza text", p, n)
			}
		}
	}
	per := float64(sizes[2]-sizes[0]) / 2
	t.Logf("backup user data: %d bytes with 0 dedicated cells, %d with 1, %d with 2 (%.0f bytes per cell)", sizes[0], sizes[1], sizes[2], per)
	if per > 1250 {
		t.Errorf("backup user data grows %.0f bytes per dedicated cell, expected at most 1250 (its stanza's section, list line, 2 host keys, 3 client keys: the pair's and its standby database's)", per)
	}
}

// TestBackupStanzasErrors: a cell's stanza must be a unique lowercase
// identifier with data nodes and keys; the error names the field.
func TestBackupStanzasErrors(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		edit       func(*Backup)
	}{
		{"stack's stanza", "Spec.Backup.Cells[0].Stanza", func(b *Backup) { b.Cells[0].Stanza = "belay" }},
		{"duplicate", "Spec.Backup.Cells[1].Stanza", func(b *Backup) { b.Cells[1].Stanza = b.Cells[0].Stanza }},
		{"not an identifier", "Spec.Backup.Cells[0].Stanza", func(b *Backup) { b.Cells[0].Stanza = "shop c2" }},
		{"no hosts", "Spec.Backup.Cells[0].DBHosts: empty", func(b *Backup) { b.Cells[0].DBHosts = nil }},
		{"host of the stack's pair", "Spec.Backup.Cells[0].DBHosts[0].Name", func(b *Backup) { b.Cells[0].DBHosts[0].Name = "db-1" }},
		{"bad address", "Spec.Backup.Cells[1].DBHosts[1].Address", func(b *Backup) { b.Cells[1].DBHosts[1].Address = "10.0.0.1;x" }},
		{"no keys", "Spec.Backup.Cells[0].ClientKeys: empty", func(b *Backup) { b.Cells[0].ClientKeys = nil }},
		{"bad key", "Spec.Backup.Cells[0].ClientKeys[1]", func(b *Backup) { b.Cells[0].ClientKeys[1] = "ssh-ed25519 AAAA x\nrestrict" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := backupSpecCells(t, 2)
			tc.edit(s.Backup)
			if _, err := Render(s); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Render = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}

// TestPgBackRestStanzasParse: the real pgBackRest reads every stanza of the
// rendered repository config, and the verification's config with any stanza.
func TestPgBackRestStanzasParse(t *testing.T) {
	pgbackrest := tool(t, "pgbackrest")
	c, _ := renderParsed(t, backupSpecCells(t, 2))
	dir := t.TempDir()
	r := strings.NewReplacer(PgBackRestRepo+"\n", dir+"/repo\n", "/var/log/pgbackrest", dir, "/tmp/pgbackrest-verify", dir)
	for _, path := range []string{"/etc/pgbackrest/pgbackrest.conf", "/etc/pgbackrest/verify.conf"} {
		f := writeTemp(t, dir, filepath.Base(path), r.Replace(fileAt(t, c, path).Content), 0o644)
		for _, stanza := range []string{"belay", "shop_c2", "shop_c3"} {
			out, err := exec.Command(pgbackrest, "--config="+f, "--stanza="+stanza, "--lock-path="+dir, "--log-level-file=off", "--output=json", "info").CombinedOutput()
			var info []map[string]any
			if err != nil || json.Unmarshal(out, &info) != nil || len(info) != 1 || info[0]["name"] != stanza {
				t.Errorf("%s, stanza %s: pgbackrest info: %v\n%s", path, stanza, err, out)
			}
		}
	}
}

// TestBackupEveryStanza runs belay-backup without a stanza against a
// two-cell list and stand-ins for pgbackrest and ssh: every stanza is
// created and backed up in turn, each one's canary stamped on its own data
// nodes, one stanza's failure fails the run without skipping the next; a
// stanza the list lacks is refused.
func TestBackupEveryStanza(t *testing.T) {
	c, _ := renderParsed(t, backupSpecCells(t, 2))
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	calls := filepath.Join(dir, "calls")
	writeTemp(t, bin, "ssh", "#!/bin/sh\ncat >/dev/null\necho \"ssh $1\" >>"+calls+"\necho '1 abc'\n", 0o755)
	writeTemp(t, bin, "pgbackrest", "#!/bin/sh\necho \"pgbackrest $*\" >>"+calls+"\ncase \"$*\" in *shop_c2*backup) exit 1 ;; esac\n", 0o755)
	script := writeTemp(t, bin, "belay-backup", stanzaListAt(t, c, dir).Replace(fileAt(t, c, "/usr/local/bin/belay-backup").Content), 0o755)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(script, args...)
		cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := run("full")
	if err == nil || !strings.Contains(out, "the full backup of stanza shop_c2 failed") {
		t.Errorf("a failing stanza: err %v\n%s", err, out)
	}
	got := readOr(calls)
	for _, want := range []string{
		"pgbackrest --stanza=belay stanza-create\nssh postgres@10.213.0.10\n", "--stanza=belay --type=full --annotation=belay-canary-rows=1",
		"pgbackrest --stanza=shop_c2 stanza-create\nssh postgres@10.213.0.221\n", "--stanza=shop_c2 --type=full",
		"pgbackrest --stanza=shop_c3 stanza-create\nssh postgres@10.213.0.223\n", "--stanza=shop_c3 --type=full",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("calls lack %q:\n%s", want, got)
		}
	}
	if out, err := run("diff", "shop_c9"); err == nil || !strings.Contains(out, "not a stanza of") {
		t.Errorf("an unlisted stanza: %v\n%s", err, out)
	}
	if out, err := run("stanza-create"); err != nil || strings.Count(readOr(calls), "stanza-create") != 6 {
		t.Errorf("stanza-create of every stanza: %v\n%s\n%s", err, out, readOr(calls))
	}
}

// TestFirstBackupEveryStanza: the first-backup job takes each stanza's first
// full as soon as that pair's primary answers; a pair that never does holds
// neither the others back nor the exit code (it gives up naming it).
func TestFirstBackupEveryStanza(t *testing.T) {
	c, _ := renderParsed(t, backupSpecCells(t, 2))
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	calls := filepath.Join(dir, "calls")
	// shop_c3's nodes (10.213.0.223/224) never answer read-write.
	writeTemp(t, bin, "ssh", "#!/bin/sh\ncat >/dev/null\ncase $1 in *.223 | *.224) echo t ;; *) echo f ;; esac\n", 0o755)
	writeTemp(t, bin, "pgbackrest", "#!/bin/sh\ncase \"$*\" in *\" info\") echo '[]' ;; esac\n", 0o755)
	writeTemp(t, bin, "sleep", "#!/bin/sh\n", 0o755)
	fake := writeTemp(t, bin, "belay-backup", "#!/bin/sh\necho \"belay-backup $*\" >>"+calls+"\n", 0o755)
	text := strings.NewReplacer("/usr/local/bin/belay-backup full", fake+" full", "\nwait=7200\n", "\nwait=20\n").Replace(fileAt(t, c, firstBackupScript).Content)
	p := writeTemp(t, dir, "belay-backup-first", stanzaListAt(t, c, dir).Replace(text), 0o755)
	cmd := exec.Command(p)
	cmd.Env = []string{"PATH=" + bin + ":/usr/bin:/bin"}
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "shop_c3: no data node accepts writes yet") {
		t.Errorf("err %v, want a give-up naming shop_c3:\n%s", err, out)
	}
	if got := readOr(calls); got != "belay-backup full belay\nbelay-backup full shop_c2\n" {
		t.Errorf("backups taken:\n%s", got)
	}
}
