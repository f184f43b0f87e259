package roles

import (
	"strings"
	"testing"
)

// The verification restore runs as the pgbackrest user; the package's spool
// directory belongs to postgres (0750), and pgBackRest's restore lists its spool
// path, so a verification with the default one fails with "Permission denied"
// (seen in the lab). Its spool must live in its own scratch directory.
func TestVerifyRestoreHasItsOwnSpool(t *testing.T) {
	c, _ := renderParsed(t, abBackupSpec(t))
	conf := fileAt(t, c, "/etc/pgbackrest/verify.conf").Content
	if !strings.Contains(conf, "\nspool-path=/var/lib/belay/verify/spool\n") {
		t.Fatalf("verify.conf has no spool-path of its own:\n%s", conf)
	}
	script := fileAt(t, c, "/usr/local/bin/belay-verify-restore").Content
	if !strings.Contains(script, `"$scratch/spool"`) {
		t.Errorf("the verify script does not create the spool directory it configures")
	}
}
