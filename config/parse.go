package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
)

// Option changes how a configuration is parsed and validated.
type Option func(*options)

type options struct {
	lab         bool
	seed        string
	secretKeys  map[string]bool // nil: the caller does not know which keys are secret
	missingSeed string          // why belay:hostKeySeed is missing, when the caller knows better
}

// WithLab allows provider "lab" (the local systemd-nspawn lab) for both sites.
func WithLab() Option { return func(o *options) { o.lab = true } }

// WithHostKeySeed supplies belay:hostKeySeed, overriding any value in the config
// (a stack file's `secure:` value cannot be decrypted outside Pulumi).
func WithHostKeySeed(seed string) Option { return func(o *options) { o.seed = seed } }

// WithSecretKeys says which full keys Pulumi holds as secrets (PULUMI_CONFIG_SECRET_KEYS);
// with it, secret-only keys stored in plain text are refused.
func WithSecretKeys(keys []string) Option {
	return func(o *options) {
		o.secretKeys = map[string]bool{}
		for _, k := range keys {
			o.secretKeys[normalizeKey(k)] = true
		}
	}
}

// The keys of the belay namespace, in the order they are checked and reported.
const (
	KeySites         = "belay:sites"
	KeyAdmin         = "belay:admin"
	KeyApps          = "belay:apps"
	KeyDatabase      = "belay:database"
	KeyBackups       = "belay:backups"
	KeyDNS           = "belay:dns"
	KeyNetwork       = "belay:network"
	KeyDeploy        = "belay:deploy"
	KeyAgent         = "belay:agent"
	KeyHostKeySeed   = "belay:hostKeySeed"
	KeyHostAPITokens = "belay:hostApiTokens"
)

// KeyTLSCertificates is declared in tls.go with the rest of the TLS configuration.

// Keys lists every key belay reads, in report order.
var Keys = []string{KeySites, KeyAdmin, KeyApps, KeyDatabase, KeyBackups, KeyDNS, KeyNetwork, KeyDeploy, KeyAgent, KeyHostKeySeed, KeyHostAPITokens, KeyTLSCertificates}

// secretOnly are keys whose plain-text storage would leak credentials into a
// checked-in stack file.
var secretOnly = map[string]string{
	KeyHostKeySeed:     `pulumi config set --secret belay:hostKeySeed "$(openssl rand -hex 32)"`,
	KeyHostAPITokens:   `pulumi config set --secret --path belay:hostApiTokens.<provider> <token>`,
	KeyTLSCertificates: `pulumi config set --secret --path 'belay:tlsCertificates.<app>.key' "$(cat privkey.pem)"`,
}

// Environment variables read by FromPulumiEnv and the stack-file parser.
const (
	EnvPulumiConfig           = "PULUMI_CONFIG"             // JSON object of every config value (set by the Pulumi engine)
	EnvPulumiConfigSecretKeys = "PULUMI_CONFIG_SECRET_KEYS" // JSON list of the keys that are secrets
	EnvHostKeySeed            = "BELAY_HOST_KEY_SEED"       // belay:hostKeySeed when reading a stack file
)

// FromPulumiEnv returns the stack configuration the Pulumi engine handed this
// program, exactly as the Go SDK reads it (PULUMI_CONFIG). ctx.GetConfig cannot list
// keys, and unknown keys must be refused, hence this. An unset variable gives an
// empty map (the engine omits it when a stack has no config).
func FromPulumiEnv() (map[string]string, error) {
	values := map[string]string{}
	raw := os.Getenv(EnvPulumiConfig)
	if raw == "" {
		return values, nil
	}
	if err := json.Unmarshal([]byte(raw), &values); err != nil {
		return nil, fmt.Errorf("%s: expected a JSON object of string values: %w", EnvPulumiConfig, err)
	}
	return values, nil
}

// SecretKeysFromPulumiEnv returns the config keys Pulumi holds as secrets
// (PULUMI_CONFIG_SECRET_KEYS), or nil if the engine did not say.
func SecretKeysFromPulumiEnv() ([]string, error) {
	raw := os.Getenv(EnvPulumiConfigSecretKeys)
	if raw == "" {
		return nil, nil
	}
	var keys []string
	if err := json.Unmarshal([]byte(raw), &keys); err != nil {
		return nil, fmt.Errorf("%s: expected a JSON list of strings: %w", EnvPulumiConfigSecretKeys, err)
	}
	return keys, nil
}

// ParsePulumiEnv parses and validates the configuration of the running Pulumi
// program (FromPulumiEnv), refusing secret-only keys stored in plain text.
func ParsePulumiEnv(opts ...Option) (*Config, error) {
	values, err := FromPulumiEnv()
	if err != nil {
		return nil, err
	}
	secret, err := SecretKeysFromPulumiEnv()
	if err != nil {
		return nil, err
	}
	if secret != nil {
		// An empty list is still an answer: no key is secret.
		opts = append([]Option{WithSecretKeys(secret)}, opts...)
	}
	return Parse(values, opts...)
}

// normalizeKey maps the legacy "belay:config:sites" spelling to "belay:sites".
func normalizeKey(k string) string {
	ns, rest, ok := strings.Cut(k, ":")
	if !ok {
		return k
	}
	if r, ok := strings.CutPrefix(rest, "config:"); ok {
		rest = r
	}
	return ns + ":" + rest
}

// Parse decodes, defaults and validates the belay:* keys of values (full keys such
// as "belay:sites" mapped to what Pulumi passes: JSON text for objects and lists,
// plain text for strings). Keys of other namespaces are ignored. Every problem is
// reported at once, each naming its key path and what was expected.
func Parse(values map[string]string, opts ...Option) (*Config, error) {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	e := &errs{}
	own := map[string]string{}
	for k, v := range values {
		k = normalizeKey(k)
		if strings.HasPrefix(k, Namespace+":") {
			own[k] = v
		}
	}
	_, seedGiven := own[KeyHostKeySeed]
	if o.seed != "" {
		own[KeyHostKeySeed] = o.seed
	}
	cfg := &Config{}
	d := &decoded{}
	for _, key := range Keys {
		text, ok := own[key]
		if !ok {
			switch {
			case key == KeyHostKeySeed && o.missingSeed != "":
				e.add(key, "%s", o.missingSeed)
			case required(key):
				e.add(key, "missing, expected %s", keyHelp[key])
			}
			continue
		}
		if key == KeyHostKeySeed {
			cfg.HostKeySeed = text
			continue
		}
		v, err := decodeJSON(text)
		if err != nil {
			switch t := strings.TrimSpace(text); {
			case key == KeyHostAPITokens:
				e.add(key, "not valid JSON, expected %s", keyHelp[key]) // never echo a secret
			case strings.HasPrefix(t, "{") || strings.HasPrefix(t, "["):
				e.add(key, "not valid JSON (%v), expected %s", err, keyHelp[key])
			default:
				e.add(key, "got %s, expected %s", describe(text), keyHelp[key])
			}
			continue
		}
		decodeKey(e, key, v, cfg, d)
	}
	if o.secretKeys != nil {
		for _, key := range []string{KeyHostKeySeed, KeyHostAPITokens, KeyTLSCertificates} {
			_, inValues := own[key]
			if key == KeyHostKeySeed {
				inValues = seedGiven // a seed passed as an option is not stored anywhere
			}
			if inValues && !o.secretKeys[key] {
				e.add(key, "stored in plain text, expected a secret (%s)", secretOnly[key])
			}
		}
	}
	var unknown []string
	for k := range own {
		if !known(k) {
			unknown = append(unknown, k)
		}
	}
	sort.Strings(unknown)
	for _, k := range unknown {
		e.add(k, "unknown key, expected one of %s%s", strings.Join(Keys, ", "), suggest(k))
	}
	applyDefaults(cfg, d)
	normalize(cfg)
	validate(e, cfg, o)
	if len(e.list) > 0 {
		return nil, errors.Join(e.sorted()...)
	}
	return cfg, nil
}

// Validate checks a Config built in code (defaults are not applied: a zero value
// is refused like a missing one). Parse already calls it.
func (c *Config) Validate(opts ...Option) error {
	o := &options{}
	for _, opt := range opts {
		opt(o)
	}
	e := &errs{}
	validate(e, c, o)
	return errors.Join(e.sorted()...)
}

func known(key string) bool { return slices.Contains(Keys, key) }

// suggest names a known key that differs only in case (a common slip: belay:dns vs belay:DNS).
func suggest(key string) string {
	for _, k := range Keys {
		if strings.EqualFold(k, key) {
			return fmt.Sprintf(" (did you mean %s?)", k)
		}
	}
	return ""
}

func required(key string) bool {
	switch key {
	case KeyNetwork, KeyDeploy, KeyHostAPITokens, KeyAgent, KeyTLSCertificates:
		// belay:agent is required for cloud stacks, which validate() checks with the sites known.
		return false
	}
	return true
}

// keyHelp says what each key should hold, for "missing"/"malformed" errors.
var keyHelp = map[string]string{
	KeySites:           "an object {primary: {provider, region}, standby: {provider, region}}",
	KeyAdmin:           "an object {sshKeys: [...], sshCidrs: [...], allowWideSshCidrs, deployUser}",
	KeyApps:            "a list of apps {name, size, standbySize, replicas, port, healthPath, domains, tls, cells, router}",
	KeyDatabase:        "an object {size, standbySize, monitorSize, postgresVersion, synchronous, name, volumeGb}",
	KeyBackups:         "an object {fullEvery, retentionDays, repoSize, archiveTimeoutSeconds, volumeGb}",
	KeyDNS:             "an object {provider, zone, ttl}",
	KeyNetwork:         "an object {primaryCidr, standbyCidr}",
	KeyDeploy:          "an object {keepReleases, shopParam, shopHeader, shopCookie}",
	KeyAgent:           "an object {url, sha256}: where servers download the belay binary",
	KeyHostKeySeed:     `a secret of at least 32 characters (pulumi config set --secret belay:hostKeySeed "$(openssl rand -hex 32)")`,
	KeyHostAPITokens:   "an object {digitalocean, hetzner} of API tokens",
	KeyTLSCertificates: "an object {<app>: {certificate, key}} of PEM certificate chains and private keys (a secret)",
}
