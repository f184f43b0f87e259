package labapp

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
)

// EnvPrefix is what /env may echo: the lab tests' own variables (set with
// `belay env set`), never DATABASE_URL or anything else of the host's.
const EnvPrefix = "LAB_"

// envHandler answers /env?key=LAB_NAME with "LAB_NAME=value" (404 when unset):
// a client through the VIP sees which env the answering release runs with.
func (a *App) envHandler(w http.ResponseWriter, r *http.Request) {
	a.headers(w, r)
	k := r.URL.Query().Get("key")
	if !strings.HasPrefix(k, EnvPrefix) {
		http.Error(w, fmt.Sprintf("key=%q: expected a %s* name", k, EnvPrefix), http.StatusBadRequest)
		return
	}
	v, ok := a.lookupEnv(k)
	if !ok {
		http.Error(w, k+" is not set", http.StatusNotFound)
		return
	}
	fmt.Fprintf(w, "%s=%s\n", k, v)
}

// ReleaseCommand is `start release`: the lab's release command (belay deploy
// --release-command "start release"). It prints what a migration would check
// (its release, whether DATABASE_URL reached it) and exits with
// $LAB_RELEASE_EXIT (default 0), so a test fails it with `belay env set`.
func ReleaseCommand(getenv func(string) string, out io.Writer) int {
	db := "unset"
	if getenv("DATABASE_URL") != "" {
		db = "set"
	}
	fmt.Fprintf(out, "labapp release command: release=%s slot=%s DATABASE_URL %s\n", getenv("BELAY_RELEASE"), getenv("BELAY_SLOT"), db)
	code := 0
	if s := getenv("LAB_RELEASE_EXIT"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > 255 {
			fmt.Fprintf(out, "labapp release command: LAB_RELEASE_EXIT=%q: expected 0-255\n", s)
			return 2
		}
		code = n
	}
	fmt.Fprintf(out, "labapp release command: exit %d\n", code)
	return code
}
