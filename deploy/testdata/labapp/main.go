// Command labapp is the release the lab deploy tests ship: a tiny HTTP server
// that serves its release id and a health endpoint. Built with -ldflags
// "-X main.health=fail" it fails its health check, with "-X main.health=fail-stable"
// only in the stable slot (a failure after `current` switched), and with
// "-X main.startDelay=5s" it starts listening late (a slow deploy that holds the lease),
// and with "-X main.canaryErrors=yes" it answers 500 on / in the canary slot (a
// release that passes its health check but fails real traffic), and with
// "-X main.exitAfter=8s" it exits with status 2 that long after it started,
// "0s" at once (a crash after passing health; a crash loop).
package main

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

var (
	health       = "ok"
	buildID      = ""
	canaryErrors = ""
	startDelay   = "0s"
	exitAfter    = ""
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		log.Fatal("PORT not set")
	}
	rel := os.Getenv("BELAY_RELEASE")
	if d, err := time.ParseDuration(exitAfter); err == nil {
		time.AfterFunc(d, func() { log.Printf("crashing on purpose after %s", d); os.Exit(2) })
	}
	if d, err := time.ParseDuration(startDelay); err == nil {
		time.Sleep(d)
	}
	failing := health == "fail" || health == "fail-stable" && os.Getenv("BELAY_SLOT") == "stable"
	mux := http.NewServeMux()
	mux.HandleFunc("/up", func(w http.ResponseWriter, r *http.Request) {
		if failing {
			http.Error(w, "unhealthy on purpose", http.StatusInternalServerError)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if canaryErrors == "yes" && os.Getenv("BELAY_SLOT") == "canary" {
			http.Error(w, "broken release", http.StatusInternalServerError)
			return
		}
		fmt.Fprintf(w, "release=%s slot=%s build=%s\n", rel, os.Getenv("BELAY_SLOT"), buildID)
	})
	srv := &http.Server{Addr: ":" + port, Handler: mux}
	go func() {
		ch := make(chan os.Signal, 1)
		signal.Notify(ch, syscall.SIGTERM, os.Interrupt)
		<-ch
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		srv.Shutdown(ctx) // drain in-flight requests: the unit's graceful stop
	}()
	if err := srv.ListenAndServe(); err != nil && err != http.ErrServerClosed {
		log.Fatal(err)
	}
}
