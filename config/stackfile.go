package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// ParseStackFile reads and validates the `config:` section of a stack file
// (stacks/Pulumi.<stack>.yaml). See ParseStackYAML for secrets.
func ParseStackFile(path string, opts ...Option) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read stack file: %w", err)
	}
	return ParseStackYAML(data, path, opts...)
}

// ParseStackYAML reads and validates the `config:` section of a stack file's
// contents; name (the file name) prefixes every error. Encrypted (`secure:`)
// values cannot be decrypted outside Pulumi: belay:hostKeySeed comes from
// WithHostKeySeed or $BELAY_HOST_KEY_SEED instead, encrypted host API tokens are
// left empty, and any other encrypted value is refused. A plain-text
// belay:hostKeySeed in the file is refused: it would leak every host key.
func ParseStackYAML(data []byte, name string, opts ...Option) (*Config, error) {
	values, secret, err := stackValues(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	seed := o.seed
	if seed == "" {
		seed = os.Getenv(EnvHostKeySeed)
	}
	keys := make([]string, 0, len(secret))
	for k := range secret {
		keys = append(keys, k)
	}
	all := append([]Option{WithSecretKeys(keys)}, opts...)
	if secret[KeyHostKeySeed] {
		delete(values, KeyHostKeySeed) // the ciphertext is useless here
		all = append(all, func(o *options) {
			o.missingSeed = fmt.Sprintf("encrypted (secure:) and cannot be decrypted outside Pulumi, expected the seed in $%s", EnvHostKeySeed)
		})
	}
	if seed != "" {
		all = append(all, WithHostKeySeed(seed))
	}
	cfg, err := Parse(values, all...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return cfg, nil
}

// stackValues turns the YAML `config:` section into what Pulumi would pass the
// program (JSON text for objects and lists, plain text for strings) and the set
// of keys holding encrypted values.
func stackValues(data []byte) (map[string]string, map[string]bool, error) {
	var file struct {
		Config map[string]any `yaml:"config"`
	}
	if err := yaml.Unmarshal(data, &file); err != nil {
		return nil, nil, fmt.Errorf("not valid YAML: %w", err)
	}
	values := map[string]string{}
	secret := map[string]bool{}
	var problems []error
	for key, raw := range file.Config {
		key = normalizeKey(key)
		if !strings.HasPrefix(key, Namespace+":") {
			continue // other namespaces (digitalocean:token, hcloud:token) are the providers' business
		}
		if isSecure(raw) {
			secret[key] = true
			switch key {
			case KeyHostKeySeed, KeyHostAPITokens, KeyTLSCertificates:
				// The seed comes from elsewhere (ParseStackYAML); tokens are only
				// needed by `pulumi up`, which decrypts them itself.
				// Encrypted as a whole: tokens are only needed by `pulumi up`, which decrypts them.
			default:
				problems = append(problems, &FieldError{Path: key, Msg: "encrypted (secure:) and cannot be decrypted outside Pulumi, expected a plain value (only belay:hostKeySeed, belay:hostApiTokens and belay:tlsCertificates are secrets)"})
			}
			continue
		}
		v, err := plain(key, raw, secret, &problems)
		if err != nil {
			problems = append(problems, &FieldError{Path: key, Msg: err.Error()})
			continue
		}
		if s, ok := v.(string); ok {
			values[key] = s
			continue
		}
		text, err := json.Marshal(v)
		if err != nil {
			problems = append(problems, &FieldError{Path: key, Msg: fmt.Sprintf("cannot be represented as JSON: %v", err)})
			continue
		}
		values[key] = string(text)
	}
	if len(problems) > 0 {
		e := &errs{list: problems}
		return nil, nil, errors.Join(e.sorted()...)
	}
	return values, secret, nil
}

// isSecure reports whether v is Pulumi's encrypted-value form {secure: <ciphertext>}.
func isSecure(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	_, ok = m["secure"].(string)
	return ok
}

// plain converts a decoded YAML value into JSON-compatible form. Encrypted
// leaves are only allowed inside belay:hostApiTokens, where they become absent.
func plain(path string, v any, secret map[string]bool, problems *[]error) (any, error) {
	top, _, _ := strings.Cut(strings.TrimPrefix(path, Namespace+":"), ".")
	top, _, _ = strings.Cut(top, "[")
	switch x := v.(type) {
	case map[string]any:
		out := map[string]any{}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			child := path + "." + k
			if isSecure(x[k]) {
				secret[Namespace+":"+top] = true
				if k := Namespace + ":" + top; k != KeyHostAPITokens && k != KeyTLSCertificates {
					*problems = append(*problems, &FieldError{Path: child, Msg: "encrypted (secure:) and cannot be decrypted outside Pulumi, expected a plain value"})
				}
				continue
			}
			c, err := plain(child, x[k], secret, problems)
			if err != nil {
				return nil, err
			}
			out[k] = c
		}
		return out, nil
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			c, err := plain(fmt.Sprintf("%s[%d]", path, i), item, secret, problems)
			if err != nil {
				return nil, err
			}
			out[i] = c
		}
		return out, nil
	case int:
		return json.Number(fmt.Sprint(x)), nil
	case float64:
		return json.Number(fmt.Sprint(x)), nil
	case string, bool, nil:
		return x, nil
	}
	return nil, fmt.Errorf("unsupported YAML value %T", v)
}
