package sync_test

import (
	"context"
	"testing"
	"time"

	"github.com/belay-sh/belay/router"
	rt "github.com/belay-sh/belay/router/routertest"
	"github.com/belay-sh/belay/router/store"
	rsync "github.com/belay-sh/belay/router/sync"
)

func routerCache(r *rt.Router) (*router.Mapping, error) { return rsync.LoadCache(r.Dir) }

func reopen(t *testing.T, dsn string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// testWait bounds every wait for the routers. Generous on purpose: the
// build machine is shared and heavily loaded at times (timings are reported
// by TestPropagation, not asserted).
const testWait = 30 * time.Second
