package components

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
)

// SSHPort is the port sshd listens on on every host.
const SSHPort = 22

// hostKeys are the pinned public host keys by host (derived, so known before boot).
func hostKeys(p *plan) (map[string]string, error) {
	out := map[string]string{}
	for _, h := range p.topo.Hosts {
		k, err := hostspec.HostKey(p.cfg, p.stack, h.Name)
		if err != nil {
			return nil, fmt.Errorf("%s: host key: %w", h.Name, err)
		}
		out[h.Name] = k.Public
	}
	return out, nil
}

// writerURL is the libpq URL that reaches the current primary: every data
// node, and libpq keeps the one that accepts writes. No password: the
// deployer and operators bring their own credentials.
func writerURL(user, db string, addrs []string) string {
	hosts := make([]string, len(addrs))
	for i, a := range addrs {
		hosts[i] = fmt.Sprintf("%s:%d", a, hostspec.DBPort)
	}
	return fmt.Sprintf("postgresql://%s@%s/%s?target_session_attrs=read-write", user, strings.Join(hosts, ","), db)
}

// inventoryDoc builds and validates the inventory from resolved values keyed
// "id/<host>", "ingress/<host>", "priv/<host>" and "vip/<app>".
func inventoryDoc(p *plan, keys map[string]string, r map[string]string) (*inventory.Inventory, error) {
	cfg, t := p.cfg, p.topo
	inv := &inventory.Inventory{
		Version: inventory.Version,
		Stack:   p.stack,
		Sites: map[inventory.SiteName]inventory.Site{
			inventory.Primary: {Provider: string(cfg.Sites.Primary.Provider), Region: cfg.Sites.Primary.Region, CIDR: cfg.Network.PrimaryCIDR},
			inventory.Standby: {Provider: string(cfg.Sites.Standby.Provider), Region: cfg.Sites.Standby.Region, CIDR: cfg.Network.StandbyCIDR},
		},
		Database: inventory.Database{
			Name:        cfg.Database.Name,
			Port:        hostspec.DBPort,
			Nodes:       append([]string{}, t.DBNodes...),
			Monitor:     t.DBMonitor,
			Standby:     t.StandbyDB,
			Synchronous: cfg.Database.Synchronous,
		},
		Backup: inventory.Backup{Host: t.BackupRepo, Stanza: hostspec.Stanza},
		Deploy: &inventory.Deploy{KeepReleases: cfg.Deploy.KeepReleases, ShopParam: cfg.Deploy.ShopParam,
			ShopHeader: cfg.Deploy.ShopHeader, ShopCookie: cfg.Deploy.ShopCookie},
	}
	for _, h := range t.Hosts {
		site := inv.Sites[h.Site]
		inv.Hosts = append(inv.Hosts, inventory.Host{
			Name:           h.Name,
			Site:           h.Site,
			Provider:       site.Provider,
			Roles:          append([]inventory.Role{}, h.Roles...),
			App:            h.App,
			Cell:           h.Cell,
			PublicAddress:  r["ingress/"+h.Name],
			PrivateAddress: r["priv/"+h.Name],
			SSHAddress:     r["ingress/"+h.Name],
			SSHPort:        SSHPort,
			DeployUser:     cfg.Admin.DeployUser,
			HostKey:        keys[h.Name],
			ProviderID:     r["id/"+h.Name],
		})
	}
	for _, a := range cfg.Apps {
		inv.Apps = append(inv.Apps, inventoryApp(a, t, r))
	}
	var nodes []string
	for _, n := range t.DBNodes {
		nodes = append(nodes, r["priv/"+n])
	}
	inv.Database.WriterURL = writerURL(hostspec.DBUser, cfg.Database.Name, nodes)
	if err := inv.Validate(); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return inv, nil
}

// inventoryOutput is the inventory as JSON text and as the object exported as
// the `inventory` stack output (so `pulumi stack output --json` nests it
// under "inventory", which inventory.Load accepts).
func inventoryOutput(p *plan, book *addressBook) (pulumi.StringOutput, pulumi.MapOutput) {
	keys, kerr := hostKeys(p)
	var names []string
	var vals []interface{}
	add := func(k string, v pulumi.StringOutput) { names = append(names, k); vals = append(vals, v) }
	for _, h := range p.topo.Hosts {
		s, ok := book.servers[h.Name]
		if !ok {
			kerr = fmt.Errorf("inventory: host %s was not created", h.Name)
			break
		}
		add("id/"+h.Name, s.ID.ToStringOutput())
		add("ingress/"+h.Name, s.IngressAddress)
		add("priv/"+h.Name, s.PrivateAddress)
	}
	for _, g := range allGroups(p.cfg, p.topo) {
		if ip, ok := book.vips[g]; ok {
			add("vip/"+g, ip.Address)
		}
	}
	text := pulumi.All(vals...).ApplyT(func(xs []interface{}) (string, error) {
		if kerr != nil {
			return "", kerr
		}
		r := map[string]string{}
		for i, x := range xs {
			s, _ := x.(string)
			r[names[i]] = s
		}
		inv, err := inventoryDoc(p, keys, r)
		if err != nil {
			return "", err
		}
		b, err := inv.Marshal()
		if err != nil {
			return "", err
		}
		return string(b), nil
	}).(pulumi.StringOutput)
	obj := text.ApplyT(func(s string) (map[string]interface{}, error) {
		var m map[string]interface{}
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			return nil, fmt.Errorf("inventory: %w", err)
		}
		return m, nil
	}).(pulumi.MapOutput)
	return text, obj
}
