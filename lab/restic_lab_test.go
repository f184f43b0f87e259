//go:build lab

package lab_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/belay-sh/belay/lab"
	"github.com/belay-sh/belay/roles"
)

// TestResticCertificateLogin: shop-1's hourly restic job logs in to the
// backup host with its CA certificate and writes a snapshot; the same key
// without its certificate, and the certificate for any other user (app2 exists
// when the lab runs with --apps 2), are refused.
func TestResticCertificateLogin(t *testing.T) {
	const app, host = "shop", "shop-1"
	user := roles.ResticUser(app)
	eventually(t, 3*time.Minute, "belay-restic-maintain to create "+user, func() error {
		out, err := lab.Console(context.Background(), paths, nil, "backup", "id", "-nG", user)
		if err != nil || !strings.Contains(string(out), roles.ResticGroup) {
			return fmt.Errorf("id -nG %s: %v %s", user, err, out)
		}
		return nil
	})
	count := func() int {
		n, err := strconv.Atoi(console(t, "backup", "sh", "-c", "find /srv/restic/"+app+"/repo/snapshots -type f 2>/dev/null | wc -l"))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	console(t, host, "systemctl", "start", "belay-restic-backup.service")
	if after := count(); after != before+1 {
		t.Errorf("snapshots in %s's repository: %d before, %d after a backup run", app, before, after)
	}

	// userHost of the repository, as the backup script uses it.
	target := console(t, host, "sh", "-c", `sed -n "s/^export RESTIC_REPOSITORY=sftp:\(.*\):\/repo$/\1/p" /usr/local/bin/belay-restic-backup`)
	_, repoAddr, ok := strings.Cut(target, "@")
	if !ok {
		t.Fatalf("repository target %q", target)
	}
	sshOpts := "-o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=/etc/belay/restic-known_hosts -o GlobalKnownHostsFile=/dev/null"
	for _, tc := range []struct{ name, script string }{
		{"key without its certificate", `d=$(mktemp -d) && cp /etc/belay/restic-backup.key "$d/k" && ssh -i "$d/k" ` + sshOpts + ` ` + user + `@` + repoAddr + ` -s sftp </dev/null; rc=$?; rm -rf "$d"; exit $rc`},
		{"certificate used for the pgbackrest user", `ssh -i /etc/belay/restic-backup.key -o CertificateFile=/etc/belay/restic-backup.key-cert.pub ` + sshOpts + ` ` + roles.PgBackRestUser + `@` + repoAddr + ` -s sftp </dev/null`},
		{"certificate used for another app's user", `ssh -i /etc/belay/restic-backup.key -o CertificateFile=/etc/belay/restic-backup.key-cert.pub ` + sshOpts + ` ` + roles.ResticUser("app2") + `@` + repoAddr + ` -s sftp </dev/null`},
	} {
		out, err := lab.Console(context.Background(), paths, nil, host, "sh", "-c", tc.script)
		// ssh's refusal is on its stderr, which Console puts in the error.
		if err == nil || !strings.Contains(string(out)+err.Error(), "Permission denied") {
			t.Errorf("%s: %v, expected Permission denied\n%s", tc.name, err, out)
		}
	}
}
