package labapp

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// MaxSleep bounds /sleep?d=: a held request, not a hung one.
const MaxSleep = time.Minute

// App serves one process's requests under a Config.
type App struct {
	cfg Config
	// data holds the per-shop data (/data); nil disables /data.
	data ShopStore
	// crash ends the process (os.Exit in Run); injected so tests observe it.
	crash func(reason string)
	n     atomic.Int64
	armed sync.Once
	// lookupEnv is os.LookupEnv (tests inject their own).
	lookupEnv func(string) (string, bool)
}

// New returns the app; crash is called (once, from a timer) when CrashAfter runs out.
func New(cfg Config, crash func(reason string)) *App {
	return &App{cfg: cfg, crash: crash, lookupEnv: os.LookupEnv}
}

// WithData serves the per-shop data in dir on /data (shopdata.go).
func (a *App) WithData(dir string) *App { return a.WithStore(DirStore(dir)) }

// WithStore serves the per-shop data of st on /data.
func (a *App) WithStore(st ShopStore) *App { a.data = st; return a }

// Handler serves:
//
//	/up          the health check (HealthPath)
//	/            the release line "release=<id> slot=<slot> build=<id>"
//	/sleep?d=1s  the same after d (at most MaxSleep): a request held open
//	/data?shop=S the shop's data (GET, PUT, POST appends), with WithData
//	/env?key=K   "K=value" of a LAB_* variable of the process (the release's env)
//
// Every answer carries the release/slot/pool headers of the package doc; the
// faults of Config apply to / and /sleep (app requests), never to /up.
func (a *App) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(HealthPath, a.health)
	mux.HandleFunc("/sleep", func(w http.ResponseWriter, r *http.Request) {
		d, err := time.ParseDuration(r.URL.Query().Get("d"))
		if err != nil || d < 0 || d > MaxSleep {
			a.headers(w, r)
			http.Error(w, fmt.Sprintf("d=%q: expected a duration up to %s", r.URL.Query().Get("d"), MaxSleep), http.StatusBadRequest)
			return
		}
		a.serve(w, r, d)
	})
	if a.data != nil {
		dh := dataHandler(a.data)
		mux.HandleFunc("/data", func(w http.ResponseWriter, r *http.Request) { a.headers(w, r); dh(w, r) })
	}
	mux.HandleFunc("/env", a.envHandler)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { a.serve(w, r, 0) })
	return mux
}

func (a *App) headers(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set(HeaderRelease, a.cfg.Release)
	h.Set(HeaderSlot, a.cfg.Slot)
	if p := r.Header.Get(HeaderPool); p != "" {
		h.Set(HeaderPool, p)
	}
	if c := r.Header.Get(HeaderCell); c != "" {
		h.Set(HeaderCell, c)
	}
}

func (a *App) health(w http.ResponseWriter, r *http.Request) {
	a.headers(w, r)
	if a.cfg.HealthFails {
		http.Error(w, "unhealthy on purpose", http.StatusInternalServerError)
		return
	}
	// A bad config (belay env set LAB_HEALTH=fail) fails the health check of
	// every release started with it: a config change that must roll back.
	if v, _ := a.lookupEnv("LAB_HEALTH"); v == "fail" {
		w.Header().Set(HeaderDeliberate, "LAB_HEALTH")
		http.Error(w, "unhealthy on purpose (LAB_HEALTH=fail)", http.StatusInternalServerError)
		return
	}
	if a.cfg.CrashAfter > 0 {
		// The timer starts at the first passed check: the deployer has seen it
		// healthy and will route traffic to it.
		a.armed.Do(func() {
			time.AfterFunc(a.cfg.CrashAfter, func() {
				a.crash(fmt.Sprintf("crashAfter=%s since the first passed health check", a.cfg.CrashAfter))
			})
		})
	}
	fmt.Fprintln(w, "ok")
}

func (a *App) serve(w http.ResponseWriter, r *http.Request, hold time.Duration) {
	n := a.n.Add(1)
	a.headers(w, r)
	c := a.cfg
	if c.CanaryErrors && (c.ErrorsSpare == "" || r.URL.Query().Get("shop") != c.ErrorsSpare) {
		w.Header().Set(HeaderDeliberate, "canaryErrors")
		http.Error(w, "broken release", http.StatusInternalServerError)
		return
	}
	if d := hold + c.SlowRoot; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return // the client gave up; nobody reads the answer
		}
	}
	if c.ErrorsOneIn > 0 && n%int64(c.ErrorsOneIn) == 0 {
		w.Header().Set(HeaderDeliberate, fmt.Sprintf("errorsOneIn=%d", c.ErrorsOneIn))
		http.Error(w, "unavailable on purpose", http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintf(w, "release=%s slot=%s build=%s\n", c.Release, c.Slot, c.BuildID)
}

// Run is the process: crash-loop or start delay, listen on addr, serve until
// SIGTERM. Without Drain the process installs no signal handler, so SIGTERM
// kills it at once with requests in flight, like an ordinary app's; with
// Drain it stops accepting and finishes in-flight requests for up to Drain.
func Run(cfg Config, addr string, logf func(format string, args ...any)) error {
	if cfg.CrashLoop {
		return errors.New("crashLoop=yes: exiting at start on purpose")
	}
	time.Sleep(cfg.StartDelay)
	// The store connects on first use: the app starts (and answers / and
	// /up) while the database is unreachable.
	st, closeStore, err := OpenStore(os.Getenv)
	if err != nil {
		return err
	}
	defer closeStore()
	app := New(cfg, func(reason string) {
		logf("labapp: crashing on purpose (%s)", reason)
		os.Exit(2)
	}).WithStore(st)
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: app.Handler(), ReadHeaderTimeout: 10 * time.Second}
	drained := make(chan struct{})
	if cfg.Drain > 0 {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
		go func() {
			defer close(drained)
			<-ch
			ctx, cancel := context.WithTimeout(context.Background(), cfg.Drain)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				logf("labapp: drain cut short after %s: %v", cfg.Drain, err)
			}
		}()
	}
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-drained // Serve returns as Shutdown starts; wait for the in-flight requests
	return nil
}

// Main is the command: the environment a belay unit gives (PORT, BELAY_RELEASE,
// BELAY_SLOT), the switches, and the exit code (1: bad setup or crashLoop).
//
// Run under the name belay-move (a symlink in the release), it is the move
// hook instead (MoveMain).
func Main(sw Switches, buildID string) int {
	if filepath.Base(os.Args[0]) == "belay-move" {
		return MoveMain(os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	}
	if len(os.Args) > 1 && os.Args[1] == "release" {
		return ReleaseCommand(os.Getenv, os.Stdout)
	}
	logger := log.New(os.Stderr, "", log.LstdFlags)
	port := os.Getenv("PORT")
	if port == "" {
		logger.Print("labapp: PORT not set")
		return 1
	}
	cfg, err := Parse(sw, os.Getenv("BELAY_RELEASE"), os.Getenv("BELAY_SLOT"), buildID)
	if err == nil {
		err = Run(cfg, ":"+port, logger.Printf)
	}
	if err != nil {
		logger.Printf("labapp: %v", err)
		return 1
	}
	return 0
}
