package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/digitalocean/godo"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"
)

func TestReadToken(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name    string
		path    string
		want    string
		wantErr string
	}{
		{"trimmed", write("ok", "  zq9x123\n", 0o600), "zq9x123", ""},
		{"group readable ok", write("grp", "zq9x", 0o640), "zq9x", ""},
		{"world readable refused", write("world", "zq9x", 0o644), "", "world-readable"},
		{"empty", write("empty", "\n", 0o600), "", "empty"},
		{"two words", write("two", "zq9x b", 0o600), "", "more than one word"},
		{"missing", filepath.Join(dir, "nope"), "", "no such file"},
		{"unset", "", "", "--token-file: required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ReadToken(tt.path)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "zq9x") {
					t.Errorf("error shows file content: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ReadToken = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	var b bytes.Buffer
	w := Redact(&b, "s3cr3t")
	fmt.Fprintf(w, "Authorization: Bearer s3cr3t, again s3cr3t\n")
	if got := b.String(); got != "Authorization: Bearer [redacted], again [redacted]\n" {
		t.Errorf("got %q", got)
	}
}

func doErr(status int, msg string, hdr http.Header) error {
	req, _ := http.NewRequest("POST", "http://double/v2/reserved_ips/x/actions", nil)
	return &godo.ErrorResponse{Response: &http.Response{StatusCode: status, Header: hdr, Request: req}, Message: msg}
}

func TestClassifyDigitalOcean(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		retry bool
		after time.Duration
	}{
		{"pending 422", doErr(422, "Droplet already has a pending event.", nil), true, 0},
		{"other 422", doErr(422, "The droplet must be in the same region as the reserved IP.", nil), false, 0},
		{"500", doErr(500, "oops", nil), true, 0},
		{"429 retry-after", doErr(429, "API Rate limit exceeded.", http.Header{"Retry-After": {"7"}}), true, 7 * time.Second},
		{"401", doErr(401, "Unable to authenticate you", nil), false, 0},
		{"network", &url.Error{Op: "Get", URL: "http://x", Err: errors.New("connection refused")}, true, 0},
		{"deadline", context.DeadlineExceeded, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := ClassifyDigitalOcean(tt.err)
			if v.Retry != tt.retry || v.After != tt.after {
				t.Errorf("verdict %+v, want retry=%v after=%s", v, tt.retry, tt.after)
			}
		})
	}
}

func TestCheckProvider(t *testing.T) {
	for _, p := range []string{"digitalocean", "hetzner"} {
		if err := CheckProvider(p); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if err := CheckProvider("DO"); err == nil || !strings.Contains(err.Error(), `expected "digitalocean" or "hetzner"`) {
		t.Errorf("DO: %v", err)
	}
}

func TestClassifyHetzner(t *testing.T) {
	tests := []struct {
		name  string
		err   error
		retry bool
	}{
		{"locked", hcloud.Error{Code: hcloud.ErrorCodeLocked, Message: "locked"}, true},
		{"conflict", hcloud.Error{Code: hcloud.ErrorCodeConflict}, true},
		{"rate limit", hcloud.Error{Code: hcloud.ErrorCodeRateLimitExceeded}, true},
		{"server error", hcloud.Error{Code: hcloud.ErrorCodeServerError}, true},
		{"wrapped", fmt.Errorf("assign: %w", hcloud.Error{Code: hcloud.ErrorCodeTimeout}), true},
		{"status without body", fmt.Errorf("%w: 502", hcloud.ErrStatusCode), true},
		{"unauthorized", hcloud.Error{Code: hcloud.ErrorCodeUnauthorized}, false},
		{"invalid input", hcloud.Error{Code: hcloud.ErrorCodeInvalidInput}, false},
		{"not found", hcloud.Error{Code: hcloud.ErrorCodeNotFound}, false},
		{"canceled", context.Canceled, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if v := ClassifyHetzner(tt.err); v.Retry != tt.retry {
				t.Errorf("verdict %+v, want retry=%v", v, tt.retry)
			}
		})
	}
}
