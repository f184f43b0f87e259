package labapp

// Per-shop data and the move contract (docs/cells.md): the lab app keeps each
// shop's data in its cell's database (DATABASE_URL, shopdb.go) or, without
// one, in a file under its data directory; it serves it on /data, and
// implements the export/import hooks `belay shop move` runs on the source and
// the target cell:
//
//	belay-move export SHOP > file     the shop's data on stdout (nothing changes)
//	belay-move import SHOP < file     replaces the shop's data, atomically
//
// Both exit 0 on success and non-zero with a message on stderr naming what
// failed; import leaves the previous data untouched when it fails.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// DataDirEnv names the data directory (default DefaultDataDir); the app user
// must own it.
const DataDirEnv = "LABAPP_DATA_DIR"

// DefaultDataDir is the data directory when DataDirEnv is unset.
const DefaultDataDir = "/var/lib/belay-labapp"

// MaxShopData bounds one shop's data (a move test uses 10 MB).
const MaxShopData = 256 << 20

var shopRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)+$`)

// DataDir is the data directory from the environment.
func DataDir(getenv func(string) string) string {
	if d := getenv(DataDirEnv); d != "" {
		return d
	}
	return DefaultDataDir
}

func checkShop(shop string) error {
	if len(shop) > 253 || !shopRe.MatchString(shop) {
		return fmt.Errorf("shop %q: expected a lowercase domain name", shop)
	}
	return nil
}

func shopFile(dir, shop string) (string, error) {
	if err := checkShop(shop); err != nil {
		return "", err
	}
	return filepath.Join(dir, shop+".data"), nil
}

// Export writes the shop's data to w (nothing for a shop without data).
func Export(dir, shop string, w io.Writer) error {
	p, err := shopFile(dir, shop)
	if err != nil {
		return err
	}
	f, err := os.Open(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("export %s: %w", shop, err)
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("export %s: %w", shop, err)
	}
	return nil
}

// Import replaces the shop's data with r's bytes: written aside, synced, then
// renamed, so a failure leaves the previous data.
func Import(dir, shop string, r io.Reader) error {
	p, err := shopFile(dir, shop)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".import-*")
	if err != nil {
		return fmt.Errorf("import %s: %w", shop, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(r, MaxShopData+1))
	if err == nil && n > MaxShopData {
		err = fmt.Errorf("more than %d bytes", MaxShopData)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p)
	}
	if err != nil {
		return fmt.Errorf("import %s: %w", shop, err)
	}
	return nil
}

// ShopStore keeps the shops' data: a directory (DirStore, the default) or
// the cell's database (PGStore, when DATABASE_URL is set).
type ShopStore interface {
	// Export writes the shop's data to w (nothing for a shop without data).
	Export(ctx context.Context, shop string, w io.Writer) error
	// Import replaces the shop's data with r's bytes, atomically.
	Import(ctx context.Context, shop string, r io.Reader) error
	// Append adds r's bytes (at most MaxAppend) to the shop's data.
	Append(ctx context.Context, shop string, r io.Reader) error
}

// MaxAppend bounds one POST to /data.
const MaxAppend = 1 << 20

// DirStore keeps each shop's data in a file of the directory: for unit tests
// and the bench, or an app with one server per cell. A cell of two servers
// must not use it: a PUT through the cell's VIP lands on either server.
type DirStore string

// Export implements ShopStore.
func (d DirStore) Export(_ context.Context, shop string, w io.Writer) error {
	return Export(string(d), shop, w)
}

// Import implements ShopStore.
func (d DirStore) Import(_ context.Context, shop string, r io.Reader) error {
	return Import(string(d), shop, r)
}

// Append implements ShopStore.
func (d DirStore) Append(_ context.Context, shop string, r io.Reader) error {
	p, err := shopFile(string(d), shop)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err == nil {
		_, err = io.Copy(f, io.LimitReader(r, MaxAppend))
		if cerr := f.Close(); err == nil {
			err = cerr
		}
	}
	if err != nil {
		return fmt.Errorf("append %s: %w", shop, err)
	}
	return nil
}

// OpenStore is the store the environment names: the database of
// DATABASE_URL when it is set (every server of a cell shares it, and it is
// where `belay shop move`'s hook, run on one of them, finds the data), else
// the directory of LABAPP_DATA_DIR. close releases it.
func OpenStore(getenv func(string) string) (s ShopStore, closeFn func(), err error) {
	if dsn := getenv("DATABASE_URL"); dsn != "" {
		pg, err := NewPGStore(dsn)
		if err != nil {
			return nil, nil, err
		}
		return pg, pg.Close, nil
	}
	return DirStore(DataDir(getenv)), func() {}, nil
}

// MoveMain is the belay-move command (the lab app's binary run under that
// name): export or import one shop; returns the exit code.
func MoveMain(args []string, getenv func(string) string, in io.Reader, out, errOut io.Writer) int {
	if len(args) != 2 || (args[0] != "export" && args[0] != "import") {
		fmt.Fprintln(errOut, "usage: belay-move export SHOP > file | belay-move import SHOP < file")
		return 2
	}
	st, closeFn, err := OpenStore(getenv)
	if err != nil {
		fmt.Fprintf(errOut, "belay-move: %v\n", err)
		return 1
	}
	defer closeFn()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if args[0] == "export" {
		err = st.Export(ctx, args[1], out)
	} else {
		err = st.Import(ctx, args[1], in)
	}
	if err != nil {
		fmt.Fprintf(errOut, "belay-move: %v\n", err)
		return 1
	}
	return 0
}

// dataHandler serves /data?shop=S: GET returns the shop's data, PUT replaces
// it, POST appends to it (the lab's "orders"). Without the parameter the shop
// is the request's Host, as the router resolves it: then one path, /data,
// reads each shop's own data from the database, which is what a cell drill's
// load needs to feel a database kill (`belay drill cell --path /data`).
func dataHandler(st ShopStore) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		shop := strings.ToLower(r.URL.Query().Get("shop"))
		if shop == "" {
			shop = strings.ToLower(hostOnly(r.Host))
		}
		if err := checkShop(shop); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		var err error
		switch r.Method {
		case http.MethodGet:
			// Buffered: a failure must be an error status, not a
			// truncated 200.
			var b bytes.Buffer
			if err = st.Export(r.Context(), shop, &b); err == nil {
				_, _ = w.Write(b.Bytes())
			}
		case http.MethodPut:
			err = st.Import(r.Context(), shop, r.Body)
		case http.MethodPost:
			err = st.Append(r.Context(), shop, r.Body)
		default:
			http.Error(w, "GET, PUT or POST", http.StatusMethodNotAllowed)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	}
}

// hostOnly is the Host without its port.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return host
}
