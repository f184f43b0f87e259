package components

import (
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
)

// TestUserDataSizeChecked: the preview refuses a stack whose user data a
// provider would reject at create time, naming the host and the limit, and
// registers nothing. It also logs the backup host's size per app count.
func TestUserDataSizeChecked(t *testing.T) {
	prev, first := 0, 0
	for _, n := range []int{1, 2, 5} {
		cfg, err := config.Parse(values(testDoc(config.DigitalOcean, config.Hetzner, n)))
		if err != nil {
			t.Fatal(err)
		}
		p, err := newPlan("test", cfg)
		if err != nil {
			t.Fatalf("%d apps: %v", n, err)
		}
		texts, err := p.userData.preflight()
		if err != nil {
			t.Fatal(err)
		}
		size := len(texts["backup"])
		t.Logf("%d apps: backup user data %d bytes (Hetzner limit %d)", n, size, hetznerUserDataLimit)
		if size < prev {
			t.Errorf("backup user data shrank with more apps")
		}
		if n == 1 {
			first = size
		}
		prev = size
	}
	// The backup host's user data grows by one line of the restic apps list
	// per app (it grew ~1.1 KB per app before the restic CA: 8 apps were refused).
	if perApp := (prev - first) / 4; perApp > 40 {
		t.Errorf("backup user data grows %d bytes per app, expected at most 40", perApp)
	}
	big, err := config.Parse(values(testDoc(config.DigitalOcean, config.Hetzner, 8)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := newPlan("test", big); err != nil {
		t.Errorf("8 apps with the backup host at Hetzner: %v, expected to fit", err)
	}
	cfg, err := config.Parse(values(testDoc(config.DigitalOcean, config.Hetzner, 2)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := newPlan("test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	texts, err := p.userData.preflight()
	if err != nil {
		t.Fatal(err)
	}
	texts["backup"] += strings.Repeat("#", hetznerUserDataLimit)
	err = checkUserDataSizes(p.topo, texts, p.cloudOf)
	if err == nil || !strings.Contains(err.Error(), "backup: user data is") || !strings.Contains(err.Error(), "Hetzner accepts at most 32768") {
		t.Errorf("oversized user data: %v, want an error naming backup and Hetzner's limit", err)
	}
}
