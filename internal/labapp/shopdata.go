package labapp

// Per-shop data and the move contract (docs/cells.md): the lab app keeps each
// shop's data in one file under its data directory, serves it on /data, and
// implements the export/import hooks `belay shop move` runs on the source and
// the target cell:
//
//	belay-move export SHOP > file     the shop's data on stdout (nothing changes)
//	belay-move import SHOP < file     replaces the shop's data, atomically
//
// Both exit 0 on success and non-zero with a message on stderr naming what
// failed; import leaves the previous data untouched when it fails.

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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

func shopFile(dir, shop string) (string, error) {
	if len(shop) > 253 || !shopRe.MatchString(shop) {
		return "", fmt.Errorf("shop %q: expected a lowercase domain name", shop)
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

// MoveMain is the belay-move command (the lab app's binary run under that
// name): export or import one shop; returns the exit code.
func MoveMain(args []string, getenv func(string) string, in io.Reader, out, errOut io.Writer) int {
	if len(args) != 2 || (args[0] != "export" && args[0] != "import") {
		fmt.Fprintln(errOut, "usage: belay-move export SHOP > file | belay-move import SHOP < file")
		return 2
	}
	dir := DataDir(getenv)
	var err error
	if args[0] == "export" {
		err = Export(dir, args[1], out)
	} else {
		err = Import(dir, args[1], in)
	}
	if err != nil {
		fmt.Fprintf(errOut, "belay-move: %v\n", err)
		return 1
	}
	return 0
}

// dataHandler serves /data?shop=S: GET returns the shop's data, PUT replaces
// it, POST appends to it (the lab's "orders").
func dataHandler(dir string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		shop := strings.ToLower(r.URL.Query().Get("shop"))
		p, err := shopFile(dir, shop)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		switch r.Method {
		case http.MethodGet:
			if err := Export(dir, shop, w); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		case http.MethodPut:
			if err := Import(dir, shop, r.Body); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		case http.MethodPost:
			f, err := os.OpenFile(p, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
			if err == nil {
				_, err = io.Copy(f, io.LimitReader(r.Body, 1<<20))
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
			}
		default:
			http.Error(w, "GET, PUT or POST", http.StatusMethodNotAllowed)
		}
	}
}
