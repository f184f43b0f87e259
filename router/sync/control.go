package sync

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/belay-sh/belay/router"
)

// Control talks to nginx's control server of an app on its unix socket
// (router.Render): the loaded snapshot's id, a push, the in-flight counters.
type Control struct {
	client *http.Client
	// keyFile is nginx's control key (router.ControlKey), read at each
	// request: a restarted nginx makes a new one.
	keyFile string
}

// ErrControlKey is nginx refusing the key read from the key file: the
// running nginx holds another one (the file was replaced since it started).
var ErrControlKey = errors.New("the control key is not the one nginx holds")

// NewControl returns the client of the control socket at socket.
func NewControl(socket string) *Control {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
		DisableKeepAlives: true,
	}
	return &Control{client: &http.Client{Transport: tr, Timeout: 30 * time.Second}, keyFile: router.ControlKey(socket)}
}

// readControlKey reads nginx's control key: a regular file of ours (root on
// a router) that nobody else may read, as nginx's master makes it.
func readControlKey(path string) (string, error) {
	st, err := os.Lstat(path)
	if err != nil {
		return "", fmt.Errorf("nginx control key: %w (nginx makes it when it starts with the router's map.conf)", err)
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o077 != 0 || !ok || int(sys.Uid) != os.Geteuid() {
		return "", fmt.Errorf("nginx control key %s: mode %v, expected a regular file of uid %d, mode 0600", path, st.Mode(), os.Geteuid())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("nginx control key: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *Control) do(ctx context.Context, method, path string, body []byte) (string, error) {
	key, err := readControlKey(c.keyFile)
	if err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://nginx"+path, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set(router.HeaderControlKey, key)
	resp, err := c.client.Do(req)
	if err != nil {
		return "", fmt.Errorf("nginx control socket: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("nginx control socket: %s %s: %w", method, path, err)
	}
	out := strings.TrimSpace(string(b))
	if resp.StatusCode == http.StatusForbidden {
		return "", fmt.Errorf("nginx refused %s %s: %w (%s): %s", method, path, ErrControlKey, c.keyFile, out)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("nginx refused %s %s: %d %s", method, path, resp.StatusCode, out)
	}
	return out, nil
}

// Loaded is the id of the snapshot nginx routes by ("none" before any).
func (c *Control) Loaded(ctx context.Context) (string, error) {
	return c.do(ctx, http.MethodGet, "/routes", nil)
}

// Load makes nginx route by a snapshot (router.RenderRoutes).
func (c *Control) Load(ctx context.Context, routes []byte) error {
	_, err := c.do(ctx, http.MethodPut, "/routes", routes)
	return err
}

// InFlight returns the shops among shops with requests in flight, and how many.
func (c *Control) InFlight(ctx context.Context, shops []string) (map[string]int, error) {
	out, err := c.do(ctx, http.MethodPost, "/inflight", []byte(strings.Join(shops, "\n")+"\n"))
	if err != nil {
		return nil, err
	}
	busy := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) != 2 {
			continue
		}
		n, err := strconv.Atoi(f[1])
		if err != nil {
			return nil, fmt.Errorf("nginx in-flight answer %q: %w", line, err)
		}
		busy[f[0]] = n
	}
	return busy, nil
}

// Certs lists the shop certificates nginx holds: domain → MD5 (hex) of the
// PEM it was given.
func (c *Control) Certs(ctx context.Context) (map[string]string, error) {
	out, err := c.do(ctx, http.MethodGet, "/certs", nil)
	if err != nil {
		return nil, err
	}
	held := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			held[f[0]] = f[1]
		}
	}
	return held, nil
}

// PutCert gives nginx domain's certificate (chain then key, PEM), which it
// checks before serving it. The key travels only over the root-only socket.
func (c *Control) PutCert(ctx context.Context, domain string, pem []byte) error {
	_, err := c.do(ctx, http.MethodPut, "/certs?domain="+url.QueryEscape(domain), pem)
	return err
}

// DeleteCert makes nginx forget domain's certificate (its SNI gets the app's again).
func (c *Control) DeleteCert(ctx context.Context, domain string) error {
	_, err := c.do(ctx, http.MethodDelete, "/certs?domain="+url.QueryEscape(domain), nil)
	return err
}
