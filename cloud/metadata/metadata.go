// Package metadata asks the provider's instance metadata service which server
// this is, so `belay vip claim --self` needs no per-host configuration.
package metadata

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// DefaultBaseURL is the link-local metadata service both providers run.
const DefaultBaseURL = "http://169.254.169.254"

// IDPath returns the path of the instance-ID document for provider.
func IDPath(provider string) (string, error) {
	switch provider {
	case api.DigitalOcean:
		return "/metadata/v1/id", nil
	case api.Hetzner:
		return "/hetzner/v1/metadata/instance-id", nil
	}
	return "", api.CheckProvider(provider)
}

type statusError struct{ code int }

func (e statusError) Error() string { return fmt.Sprintf("HTTP %d", e.code) }

// SelfID returns this server's provider ID from the metadata service at base
// ("" = DefaultBaseURL). It retries briefly: right after boot the service can
// be unreachable for a moment.
func SelfID(ctx context.Context, provider, base string, p retry.Policy) (int64, error) {
	path, err := IDPath(provider)
	if err != nil {
		return 0, err
	}
	if base == "" {
		base = DefaultBaseURL
	}
	url := strings.TrimRight(base, "/") + path
	hc := &http.Client{Timeout: 2 * time.Second}
	var body []byte
	classify := func(err error) retry.Verdict {
		if se, ok := err.(statusError); ok {
			return retry.Verdict{Retry: se.code >= 500, Reason: se.Error()}
		}
		return retry.Verdict{Retry: true, Reason: "metadata service unreachable"}
	}
	err = retry.Do(ctx, p, "metadata "+url, classify, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return statusError{resp.StatusCode}
		}
		body, err = io.ReadAll(io.LimitReader(resp.Body, 64))
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("--self: %w", err)
	}
	id, err := strconv.ParseInt(strings.TrimSpace(string(body)), 10, 64)
	if err != nil || id <= 0 {
		return 0, fmt.Errorf("--self: metadata %s answered %q; expected a positive server ID", url, strings.TrimSpace(string(body)))
	}
	return id, nil
}
