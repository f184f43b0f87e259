package sync_test

import (
	"context"
	"testing"

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
