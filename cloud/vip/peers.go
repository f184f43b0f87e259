package vip

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/digitalocean/godo"
	"github.com/hetznercloud/hcloud-go/v2/hcloud"

	"github.com/belay-sh/belay/cloud/api"
	"github.com/belay-sh/belay/cloud/retry"
)

// Member is one server of a VRRP group as the provider lists it.
type Member struct {
	ID        int64
	Name      string
	PrivateIP netip.Addr // invalid when the server has no private network address
}

// doPerPage is DO's maximum page size; tests shrink it to exercise pagination.
var doPerPage = 200

// DigitalOceanMembers lists the droplets tagged tag, following pagination.
func DigitalOceanMembers(ctx context.Context, c *godo.Client, tag string, p retry.Policy) ([]Member, error) {
	var out []Member
	opt := &godo.ListOptions{Page: 1, PerPage: doPerPage}
	for {
		var page []godo.Droplet
		var resp *godo.Response
		err := retry.Do(ctx, p, fmt.Sprintf("digitalocean: list droplets tagged %q", tag), api.ClassifyDigitalOcean, func(ctx context.Context) error {
			var err error
			page, resp, err = c.Droplets.ListByTag(ctx, tag, opt)
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, d := range page {
			m := Member{ID: int64(d.ID), Name: d.Name}
			if s, err := d.PrivateIPv4(); err == nil && s != "" {
				m.PrivateIP, _ = netip.ParseAddr(s)
			}
			out = append(out, m)
		}
		if resp == nil || resp.Links == nil || resp.Links.IsLastPage() {
			return out, nil
		}
		cur, err := resp.Links.CurrentPage()
		if err != nil {
			return nil, fmt.Errorf("digitalocean: droplet list pagination: %w", err)
		}
		opt.Page = cur + 1
	}
}

// HetznerMembers lists the servers matching the label selector. network picks
// the private network whose address counts (0 = the server's first one).
func HetznerMembers(ctx context.Context, c *hcloud.Client, selector string, network int64, p retry.Policy) ([]Member, error) {
	var servers []*hcloud.Server
	err := retry.Do(ctx, p, fmt.Sprintf("hetzner: list servers %q", selector), api.ClassifyHetzner, func(ctx context.Context) error {
		var err error
		servers, err = c.Server.AllWithOpts(ctx, hcloud.ServerListOpts{ListOpts: hcloud.ListOpts{LabelSelector: selector, PerPage: 50}})
		return err
	})
	if err != nil {
		return nil, err
	}
	var out []Member
	for _, s := range servers {
		m := Member{ID: s.ID, Name: s.Name}
		for _, pn := range s.PrivateNet {
			if network != 0 && (pn.Network == nil || pn.Network.ID != network) {
				continue
			}
			if a, ok := netip.AddrFromSlice(pn.IP); ok {
				m.PrivateIP = a.Unmap()
				break
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// Peers returns the other members' private addresses, sorted, so the rendered
// file is byte-identical on every boot. It fails when self is not in the
// group (a wrong tag/selector would otherwise silently peer with strangers)
// or when no peer with a private address remains.
func Peers(members []Member, self int64, group string, logf func(string, ...any)) ([]netip.Addr, error) {
	found := false
	var addrs []netip.Addr
	for _, m := range members {
		if m.ID == self {
			found = true
			continue
		}
		if !m.PrivateIP.IsValid() {
			if logf != nil {
				logf("peers: %s (id %d) has no private address; skipped", m.Name, m.ID)
			}
			continue
		}
		addrs = append(addrs, m.PrivateIP)
	}
	if !found {
		return nil, fmt.Errorf("this server (id %d) is not among the %d server(s) of group %q; check --selector and --server-id", self, len(members), group)
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("group %q: found no peer with a private address besides this server (id %d); keepalived needs at least one unicast peer", group, self)
	}
	sort.Slice(addrs, func(i, j int) bool { return addrs[i].Less(addrs[j]) })
	return addrs, nil
}

// RenderPeers renders the body keepalived.conf includes inside its
// unicast_peer { } block (roles.PeersFile): a comment naming the source, then
// one address per line.
func RenderPeers(addrs []netip.Addr, source string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Written by belay vip peers from %s. Do not edit: rewritten at boot.\n", strings.ReplaceAll(source, "\n", " "))
	for _, a := range addrs {
		fmt.Fprintf(&b, "%s\n", a)
	}
	return b.Bytes()
}

// WriteFileAtomic replaces path with data via a synced temporary file in the
// same directory and a rename, so keepalived never reads a half-written file.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Chmod(mode); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, derr := os.Open(dir); derr == nil {
		// Persist the rename itself; a crash right after boot must not leave the old file.
		_ = d.Sync()
		d.Close()
	}
	return nil
}
