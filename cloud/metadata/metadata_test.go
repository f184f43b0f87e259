package metadata

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/belay-sh/belay/cloud/retry"
)

// newMetadataDouble serves the providers' instance-ID documents on loopback;
// failFirst answers 503 that many times first (the service warming up at boot).
func newMetadataDouble(t *testing.T, body string, failFirst int32) (*httptest.Server, *atomic.Int32) {
	t.Helper()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := calls.Add(1)
		if n <= failFirst {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		switch r.URL.Path {
		case "/metadata/v1/id", "/hetzner/v1/metadata/instance-id":
			w.Write([]byte(body))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, &calls
}

func TestSelfID(t *testing.T) {
	fast := retry.Policy{Base: time.Millisecond, Max: 2 * time.Millisecond}
	tests := []struct {
		name      string
		provider  string
		body      string
		failFirst int32
		want      int64
		wantErr   string
	}{
		{name: "digitalocean", provider: "digitalocean", body: "3164494\n", want: 3164494},
		{name: "hetzner", provider: "hetzner", body: "42", want: 42},
		{name: "retries a warming service", provider: "hetzner", body: "42", failFirst: 2, want: 42},
		{name: "garbage", provider: "digitalocean", body: "<html>", wantErr: `answered "<html>"; expected a positive server ID`},
		{name: "unknown provider", provider: "aws", wantErr: `--provider: "aws" is not a provider`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv, _ := newMetadataDouble(t, tt.body, tt.failFirst)
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			got, err := SelfID(ctx, tt.provider, srv.URL, fast)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("SelfID = %d, %v; want %d", got, err, tt.want)
			}
		})
	}
}

func TestSelfIDNotFoundIsFinal(t *testing.T) {
	srv, calls := newMetadataDouble(t, "1", 0)
	_, err := SelfID(context.Background(), "digitalocean", srv.URL+"/nothing-here", retry.Policy{Base: time.Millisecond, Max: time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "HTTP 404") || calls.Load() != 1 {
		t.Fatalf("err = %v after %d calls; want one call and HTTP 404", err, calls.Load())
	}
}
