package components

import (
	"fmt"

	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"
)

// FirewallsArgs describes one site's cloud firewalls.
type FirewallsArgs struct {
	Stack    string
	Site     *Site
	Policies []firewallPolicy
	// PublicAddress resolves a belay host to its public address.
	PublicAddress func(host string) (pulumi.StringOutput, error)
	Labels        Labels
}

// Firewalls is one site's cloud firewalls (belay:index:Firewalls). They are
// created after the servers because some rules name other servers' addresses;
// they select their servers by group, so a replaced server is covered at once.
type Firewalls struct {
	pulumi.ResourceState

	Resources []pulumi.Resource
}

// NewFirewalls creates a site's firewalls from its policies.
func NewFirewalls(ctx *pulumi.Context, name string, a FirewallsArgs, opts ...pulumi.ResourceOption) (*Firewalls, error) {
	f := &Firewalls{}
	if err := ctx.RegisterComponentResource("belay:index:Firewalls", name, f, opts...); err != nil {
		return nil, err
	}
	for _, p := range a.Policies {
		if p.Site != a.Site.Name {
			return nil, fmt.Errorf("firewall %s belongs to site %s, not %s", p.Name, p.Site, a.Site.Name)
		}
		var rules []FirewallRule
		for _, r := range p.Rules {
			rule := FirewallRule{Protocol: r.Protocol, Port: r.Port, Description: r.Description}
			for _, g := range r.Groups {
				rule.Groups = append(rule.Groups, groupName(a.Stack, g))
			}
			if len(r.CIDRs) > 0 || len(r.Hosts) > 0 {
				cidrs, err := sourceCIDRs(r, a.PublicAddress)
				if err != nil {
					return nil, fmt.Errorf("firewall %s: %w", p.Name, err)
				}
				rule.CIDRs = cidrs
			}
			rules = append(rules, rule)
		}
		res, err := a.Site.Cloud.Firewall(ctx, p.Name, FirewallArgs{
			Group:  groupName(a.Stack, p.Group),
			Labels: a.Labels,
			Rules:  rules,
		}, pulumi.Parent(f))
		if err != nil {
			return nil, err
		}
		f.Resources = append(f.Resources, res)
	}
	if err := ctx.RegisterResourceOutputs(f, pulumi.Map{"count": pulumi.Int(len(f.Resources))}); err != nil {
		return nil, err
	}
	return f, nil
}

// sourceCIDRs joins a rule's static networks with the /32 of each named host.
func sourceCIDRs(r policyRule, public func(string) (pulumi.StringOutput, error)) (pulumi.StringArrayInput, error) {
	static := append([]string{}, r.CIDRs...)
	if len(r.Hosts) == 0 {
		return pulumi.ToStringArray(static), nil
	}
	addrs := make([]interface{}, 0, len(r.Hosts))
	for _, h := range r.Hosts {
		a, err := public(h)
		if err != nil {
			return nil, err
		}
		addrs = append(addrs, a)
	}
	return pulumi.All(addrs...).ApplyT(func(xs []interface{}) ([]string, error) {
		out := append([]string{}, static...)
		for i, x := range xs {
			s, _ := x.(string)
			if s == "" {
				return nil, fmt.Errorf("host %s has no public address", r.Hosts[i])
			}
			out = append(out, s+"/32")
		}
		return out, nil
	}).(pulumi.StringArrayOutput), nil
}
