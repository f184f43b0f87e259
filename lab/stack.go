package lab

import (
	_ "embed"
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/belay-sh/belay/config"
)

//go:embed default-stack.yaml
var defaultStack []byte

// DefaultStack is the embedded stack file `belay lab up` uses without --stack.
func DefaultStack() []byte { return append([]byte(nil), defaultStack...) }

// StackName is the Pulumi stack name the lab's machines and inventory carry.
const StackName = "lab"

// StackInput names the stack file the lab builds and how to adapt it.
type StackInput struct {
	// File is a stack file (stacks/Pulumi.<stack>.yaml); "" means the embedded default.
	File string
	// Apps, when > 0, sets the number of apps: extra apps are copies of the first
	// (named app2..appN, domain <name>.<dns zone>); fewer truncates the list.
	Apps int
}

// LoadStack reads the stack file and turns it into the lab's config: both sites
// become lab sites on the lab's networks, the lab's admin key and deployer legs
// are allowed in, and the lab's own seed derives every key. Every value is then
// validated by config like any stack (with provider "lab" allowed).
func LoadStack(in StackInput, seed, adminKey string) (*config.Config, error) {
	data, name := defaultStack, "lab/default-stack.yaml (embedded)"
	if in.File != "" {
		b, err := os.ReadFile(in.File)
		if err != nil {
			return nil, fmt.Errorf("--stack: %w", err)
		}
		data, name = b, in.File
	}
	adapted, err := adaptStack(data, in.Apps, adminKey)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	cfg, err := config.ParseStackYAML(adapted, name, config.WithLab(), config.WithHostKeySeed(seed))
	if err != nil {
		return nil, err
	}
	return cfg, nil
}

// adaptStack rewrites the belay:* keys the lab owns in a stack file's YAML.
func adaptStack(data []byte, apps int, adminKey string) ([]byte, error) {
	var doc map[string]any
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	cfg, ok := doc["config"].(map[string]any)
	if !ok {
		return nil, fmt.Errorf("config: missing, expected the stack file's `config:` mapping")
	}
	key := func(k string) string {
		for existing := range cfg {
			if existing == "belay:"+k || existing == "belay:config:"+k {
				return existing
			}
		}
		return "belay:" + k
	}
	// Sites: the lab stands in for both providers; regions keep their names for reports.
	sites, _ := cfg[key("sites")].(map[string]any)
	if sites == nil {
		sites = map[string]any{}
	}
	for _, s := range []string{"primary", "standby"} {
		site, _ := sites[s].(map[string]any)
		region := "lab-" + s
		if site != nil {
			if r, ok := site["region"].(string); ok && r != "" {
				region = r
			}
		}
		sites[s] = map[string]any{"provider": string(config.Lab), "region": region}
	}
	cfg[key("sites")] = sites
	cfg[key("network")] = map[string]any{"primaryCidr": PrimaryCIDR.String(), "standbyCidr": StandbyCIDR.String()}
	if dns, ok := cfg[key("dns")].(map[string]any); ok {
		dns["provider"] = string(config.Lab)
	}

	admin, _ := cfg[key("admin")].(map[string]any)
	if admin == nil {
		admin = map[string]any{}
	}
	keys, _ := admin["sshKeys"].([]any)
	admin["sshKeys"] = appendUnique(keys, adminKey)
	cidrs, _ := admin["sshCidrs"].([]any)
	for _, s := range Segments() {
		cidrs = appendUnique(cidrs, s.HostLeg.String()+"/32")
	}
	admin["sshCidrs"] = cidrs
	cfg[key("admin")] = admin
	// A real stack's seed is encrypted and never the lab's: the lab brings its own.
	delete(cfg, key("hostKeySeed"))
	delete(cfg, key("hostApiTokens"))

	if apps > 0 {
		list, _ := cfg[key("apps")].([]any)
		if len(list) == 0 {
			return nil, fmt.Errorf("belay:apps: --apps %d needs at least one app in the stack to copy", apps)
		}
		if apps < len(list) {
			list = list[:apps]
		}
		first, _ := list[0].(map[string]any)
		zone := "lab.belay.test"
		if dns, ok := cfg[key("dns")].(map[string]any); ok {
			if z, ok := dns["zone"].(string); ok && z != "" {
				zone = strings.TrimSuffix(z, ".")
			}
		}
		for i := len(list); i < apps; i++ {
			clone := map[string]any{}
			for k, v := range first {
				clone[k] = v
			}
			name := fmt.Sprintf("app%d", i+1)
			clone["name"] = name
			clone["domains"] = []any{name + "." + zone}
			list = append(list, clone)
		}
		cfg[key("apps")] = list
	}
	return yaml.Marshal(doc)
}

func appendUnique(list []any, v string) []any {
	for _, x := range list {
		if s, ok := x.(string); ok && strings.TrimSpace(s) == v {
			return list
		}
	}
	return append(list, v)
}
