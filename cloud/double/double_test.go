package double

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func get(t *testing.T, url, token string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var body map[string]any
	if len(b) > 0 {
		if err := json.Unmarshal(b, &body); err != nil {
			t.Fatalf("%s: not JSON: %s", url, b)
		}
	}
	return resp, body
}

// TestDoublesSpeakTheDocumentedShapes pins the envelopes the providers
// document, independent of the client libraries that parse them.
func TestDoublesSpeakTheDocumentedShapes(t *testing.T) {
	do := NewDigitalOceanDouble("t0k")
	t.Cleanup(do.Close)
	do.AddReservedIP("203.0.113.10", "fra1", 0)
	hz := NewHetznerDouble("t0k")
	t.Cleanup(hz.Close)
	hz.AddFloatingIP(HetznerFloatingIP{ID: 1, IP: "203.0.113.10"})

	tests := []struct {
		name, url, token string
		status           int
		check            func(map[string]any) bool
	}{
		{"DO unassigned reserved IP has droplet null", do.URL() + "/v2/reserved_ips/203.0.113.10", "t0k", 200, func(b map[string]any) bool {
			r, ok := b["reserved_ip"].(map[string]any)
			v, has := r["droplet"]
			return ok && has && v == nil && r["ip"] == "203.0.113.10"
		}},
		{"DO wrong token", do.URL() + "/v2/reserved_ips/203.0.113.10", "nope", 401, func(b map[string]any) bool { return b["id"] == "Unauthorized" }},
		{"DO missing token", do.URL() + "/v2/droplets", "", 401, func(b map[string]any) bool { return b["message"] != nil }},
		{"DO unknown path", do.URL() + "/v2/volumes", "t0k", 404, func(b map[string]any) bool { return b["id"] == "not_found" }},
		{"Hetzner floating IP has server null", hz.URL() + "/floating_ips/1", "t0k", 200, func(b map[string]any) bool {
			f, ok := b["floating_ip"].(map[string]any)
			v, has := f["server"]
			return ok && has && v == nil
		}},
		{"Hetzner wrong token", hz.URL() + "/servers", "nope", 401, func(b map[string]any) bool {
			e, ok := b["error"].(map[string]any)
			return ok && e["code"] == "unauthorized"
		}},
		{"Hetzner list has pagination meta", hz.URL() + "/servers", "t0k", 200, func(b map[string]any) bool {
			m, ok := b["meta"].(map[string]any)
			return ok && m["pagination"] != nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := get(t, tt.url, tt.token)
			if resp.StatusCode != tt.status || !tt.check(body) {
				t.Errorf("status %d body %v", resp.StatusCode, body)
			}
		})
	}
}

func TestFaults(t *testing.T) {
	do := NewDigitalOceanDouble("t0k")
	t.Cleanup(do.Close)
	do.SetFaults(Faults{Drops: 1, ServerErrors: 1, RateLimited: 1, RetryAfter: 3})
	url := do.URL() + "/v2/droplets"
	req, _ := http.NewRequest("GET", url, nil)
	req.Header.Set("Authorization", "Bearer t0k")
	if _, err := http.DefaultClient.Do(req); err == nil {
		t.Error("dropped request got an answer")
	}
	if resp, _ := get(t, url, "t0k"); resp.StatusCode != 500 {
		t.Errorf("want 500, got %d", resp.StatusCode)
	}
	if resp, _ := get(t, url, "t0k"); resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "3" {
		t.Errorf("want 429 with Retry-After 3, got %d %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if resp, _ := get(t, url, "t0k"); resp.StatusCode != 200 {
		t.Errorf("faults not used up: %d", resp.StatusCode)
	}
	if got := strings.Join(do.Requests(), ","); strings.Count(got, "GET /v2/droplets") != 4 {
		t.Errorf("request log %s", got)
	}
}
