package lab

import (
	"fmt"
	"strings"

	"github.com/belay-sh/belay/config"
	"github.com/belay-sh/belay/hostspec"
	"github.com/belay-sh/belay/inventory"
	"github.com/belay-sh/belay/topology"
)

// buildInventory lists the lab's machines in exactly the stack-output format, so
// every command that works on the lab works on a cloud stack and back.
func buildInventory(cfg *config.Config, topo *topology.Topology, stack string) (*inventory.Inventory, error) {
	deployUser := cfg.Admin.DeployUser
	if deployUser == "" {
		deployUser = config.DefaultDeployUser
	}
	inv := &inventory.Inventory{
		Version: inventory.Version,
		Stack:   stack,
		Sites: map[inventory.SiteName]inventory.Site{
			inventory.Primary: {Provider: string(config.Lab), Region: cfg.Sites.Primary.Region, CIDR: PrimaryCIDR.String()},
			inventory.Standby: {Provider: string(config.Lab), Region: cfg.Sites.Standby.Region, CIDR: StandbyCIDR.String()},
		},
	}
	for _, h := range topo.Hosts {
		key, err := hostspec.HostKey(cfg, stack, h.Name)
		if err != nil {
			return nil, fmt.Errorf("host key of %s: %w", h.Name, err)
		}
		addr := h.PrivateAddress.String()
		inv.Hosts = append(inv.Hosts, inventory.Host{
			Name: h.Name, Site: h.Site, Provider: string(config.Lab),
			Roles: append([]inventory.Role(nil), h.Roles...), App: h.App, Cell: h.Cell,
			PrivateAddress: addr, SSHAddress: addr, SSHPort: 22,
			DeployUser: deployUser, HostKey: key.Public,
		})
	}
	// The lab's floating addresses are hostspec's (LabVIP, LabCellVIP).
	env, err := hostspec.DefaultEnv(cfg, topo, true)
	if err != nil {
		return nil, err
	}
	for _, a := range cfg.Apps {
		inv.Apps = append(inv.Apps, topo.InventoryApp(a, func(group string) string { return env.VIPs[group].Address }))
	}
	var writers []string
	for _, n := range topo.DBNodes {
		writers = append(writers, fmt.Sprintf("%s:%d", topo.Host(n).PrivateAddress, hostspec.DBPort))
	}
	inv.Database = inventory.Database{
		Name: cfg.Database.Name, Port: hostspec.DBPort, Nodes: append([]string(nil), topo.DBNodes...),
		Monitor: topo.DBMonitor, Standby: topo.StandbyDB,
		WriterURL:   fmt.Sprintf("postgresql://%s@%s/%s?target_session_attrs=read-write", hostspec.DBUser, strings.Join(writers, ","), cfg.Database.Name),
		Synchronous: cfg.Database.Synchronous,
	}
	inv.Backup = inventory.Backup{Host: topo.BackupRepo, Stanza: hostspec.Stanza}
	inv.Deploy = &inventory.Deploy{KeepReleases: cfg.Deploy.KeepReleases, ShopParam: cfg.Deploy.ShopParam,
		ShopHeader: cfg.Deploy.ShopHeader, ShopCookie: cfg.Deploy.ShopCookie}
	if err := inv.Validate(); err != nil {
		return nil, fmt.Errorf("lab inventory: %w", err)
	}
	return inv, nil
}
