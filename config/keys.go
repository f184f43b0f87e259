package config

import (
	"fmt"
	"net/netip"
	"strings"
)

// Defaults applied by Parse to fields the user left out.
const (
	DefaultReplicas              = 2
	DefaultHealthPath            = "/up"
	DefaultDeployUser            = "deploy"
	DefaultDatabaseName          = "app"
	DefaultPostgresVersion       = 15
	DefaultSynchronous           = true
	DefaultArchiveTimeoutSeconds = 30
	DefaultDatabaseVolumeGB      = 20
	DefaultBackupVolumeGB        = 100
	DefaultTTL                   = 60
	DefaultPrimaryCIDR           = "10.10.0.0/24"
	DefaultStandbyCIDR           = "10.20.0.0/24"
	DefaultKeepReleases          = 5
	DefaultShopParam             = "shop"
	DefaultShopHeader            = "X-Shop-Domain"
	DefaultShopCookie            = "shop"
)

// decoded remembers which defaulted fields depend on other keys.
type decoded struct {
	monitorSize bool // belay:database.monitorSize was given
	network     bool // belay:network was given
	deploy      bool // belay:deploy was given
}

// decodeKey reads one top-level key into cfg, applying the field defaults that
// need no other key; the key's own value was already JSON-decoded into v.
func decodeKey(e *errs, key string, v any, cfg *Config, d *decoded) {
	switch key {
	case KeySites:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		site := func(name string, dst *Site) {
			raw, ok := o.get(name)
			if !ok {
				e.add(o.field(name), "missing, expected an object {provider, region}")
				return
			}
			s := asObject(e, o.field(name), raw)
			if s == nil {
				return
			}
			var p string
			s.str("provider", &p)
			dst.Provider = Provider(p)
			s.str("region", &dst.Region)
			s.done("provider", "region")
		}
		site("primary", &cfg.Sites.Primary)
		site("standby", &cfg.Sites.Standby)
		o.done("primary", "standby")
	case KeyAdmin:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		o.strs("sshKeys", &cfg.Admin.SSHKeys)
		o.strs("sshCidrs", &cfg.Admin.SSHCidrs)
		o.boolean("allowWideSshCidrs", &cfg.Admin.AllowWideSSHCidrs)
		if !o.str("deployUser", &cfg.Admin.DeployUser) {
			cfg.Admin.DeployUser = DefaultDeployUser
		}
		o.done("sshKeys", "sshCidrs", "allowWideSshCidrs", "deployUser")
	case KeyApps:
		list, ok := v.([]any)
		if !ok {
			e.add(key, "got %s, expected %s", e.describe(v), keyHelp[key])
			return
		}
		cfg.Apps = make([]App, len(list))
		for i, item := range list {
			a := &cfg.Apps[i]
			o := asObject(e, fmt.Sprintf("%s[%d]", key, i), item)
			if o == nil {
				continue
			}
			o.str("name", &a.Name)
			o.str("size", &a.Size)
			o.str("standbySize", &a.StandbySize)
			if !o.integer("replicas", &a.Replicas) {
				a.Replicas = DefaultReplicas
			}
			if _, ok := o.m["port"]; !ok {
				e.add(o.field("port"), "missing, expected the port the app listens on, 1024..65534 (port+1 is the canary's)")
			}
			o.integer("port", &a.Port)
			if !o.str("healthPath", &a.HealthPath) {
				a.HealthPath = DefaultHealthPath
			}
			o.strs("domains", &a.Domains)
			a.TLS = defaultTLS()
			if raw, ok := o.get("tls"); ok {
				decodeTLS(e, o.field("tls"), raw, &a.TLS)
			}
			decodeCells(e, o, a)
			decodeRouter(e, o, a)
			o.done("name", "size", "standbySize", "replicas", "port", "healthPath", "domains", "tls", "cells", "router")
		}
	case KeyDatabase:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		db := &cfg.Database
		o.str("size", &db.Size)
		o.str("standbySize", &db.StandbySize)
		d.monitorSize = o.str("monitorSize", &db.MonitorSize)
		if !o.integer("postgresVersion", &db.PostgresVersion) {
			db.PostgresVersion = DefaultPostgresVersion
		}
		if !o.boolean("synchronous", &db.Synchronous) {
			db.Synchronous = DefaultSynchronous
		}
		if !o.str("name", &db.Name) {
			db.Name = DefaultDatabaseName
		}
		if !o.integer("volumeGb", &db.VolumeGB) {
			db.VolumeGB = DefaultDatabaseVolumeGB
		}
		o.done("size", "standbySize", "monitorSize", "postgresVersion", "synchronous", "name", "volumeGb")
	case KeyBackups:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		b := &cfg.Backups
		o.str("fullEvery", &b.FullEvery)
		if _, ok := o.m["retentionDays"]; !ok {
			e.add(o.field("retentionDays"), "missing, expected a number of days to keep backups, at least 1")
		}
		o.integer("retentionDays", &b.RetentionDays)
		o.str("repoSize", &b.RepoSize)
		if !o.integer("archiveTimeoutSeconds", &b.ArchiveTimeoutSeconds) {
			b.ArchiveTimeoutSeconds = DefaultArchiveTimeoutSeconds
		}
		if !o.integer("volumeGb", &b.VolumeGB) {
			b.VolumeGB = DefaultBackupVolumeGB
		}
		o.done("fullEvery", "retentionDays", "repoSize", "archiveTimeoutSeconds", "volumeGb")
	case KeyDNS:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		var p string
		o.str("provider", &p)
		cfg.DNS.Provider = Provider(p)
		o.str("zone", &cfg.DNS.Zone)
		if !o.integer("ttl", &cfg.DNS.TTL) {
			cfg.DNS.TTL = DefaultTTL
		}
		o.done("provider", "zone", "ttl")
	case KeyNetwork:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		d.network = true
		if !o.str("primaryCidr", &cfg.Network.PrimaryCIDR) {
			cfg.Network.PrimaryCIDR = DefaultPrimaryCIDR
		}
		if !o.str("standbyCidr", &cfg.Network.StandbyCIDR) {
			cfg.Network.StandbyCIDR = DefaultStandbyCIDR
		}
		o.done("primaryCidr", "standbyCidr")
	case KeyDeploy:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		d.deploy = true
		dp := &cfg.Deploy
		*dp = defaultDeploy()
		o.integer("keepReleases", &dp.KeepReleases)
		o.str("shopParam", &dp.ShopParam)
		o.str("shopHeader", &dp.ShopHeader)
		o.str("shopCookie", &dp.ShopCookie)
		o.done("keepReleases", "shopParam", "shopHeader", "shopCookie")
	case KeyAgent:
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		o.str("url", &cfg.Agent.URL)
		o.str("sha256", &cfg.Agent.SHA256)
		o.done("url", "sha256")
	case KeyTLSCertificates:
		decodeTLSCertificates(e, key, v, cfg)
	case KeyHostAPITokens:
		e.redact = true
		defer func() { e.redact = false }()
		o := asObject(e, key, v)
		if o == nil {
			return
		}
		o.str("digitalocean", &cfg.HostAPITokens.DigitalOcean)
		o.str("hetzner", &cfg.HostAPITokens.Hetzner)
		o.done("digitalocean", "hetzner")
	}
}

func defaultDeploy() Deploy {
	return Deploy{KeepReleases: DefaultKeepReleases, ShopParam: DefaultShopParam, ShopHeader: DefaultShopHeader, ShopCookie: DefaultShopCookie}
}

// applyDefaults fills what the user left out of keys that may be omitted whole,
// and the defaults that depend on other keys (the monitor's size depends on the
// primary site's provider and region).
func applyDefaults(cfg *Config, d *decoded) {
	if !d.network {
		cfg.Network = Network{PrimaryCIDR: DefaultPrimaryCIDR, StandbyCIDR: DefaultStandbyCIDR}
	}
	if !d.deploy {
		cfg.Deploy = defaultDeploy()
	}
	if !d.monitorSize {
		cfg.Database.MonitorSize = SmallestSize(cfg.Sites.Primary.Provider, cfg.Sites.Primary.Region)
	}
	// A dedicated cell's data nodes default to the stack's data nodes' size
	// (belay:database is decoded independently of belay:apps).
	for i := range cfg.Apps {
		for j := range cfg.Apps[i].Cells {
			if c := &cfg.Apps[i].Cells[j]; c.Dedicated() && c.DatabaseSize == "" {
				c.DatabaseSize = cfg.Database.Size
			}
		}
	}
}

// normalize rewrites equivalent spellings to the canonical one: host names are
// case-insensitive and may end in a dot, and a bare address in sshCidrs means
// that one host.
func normalize(cfg *Config) {
	host := func(h string) string { return strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), ".") }
	cfg.DNS.Zone = host(cfg.DNS.Zone)
	for i := range cfg.Apps {
		for j, d := range cfg.Apps[i].Domains {
			cfg.Apps[i].Domains[j] = host(d)
		}
	}
	for i, c := range cfg.Admin.SSHCidrs {
		if a, err := netip.ParseAddr(strings.TrimSpace(c)); err == nil {
			cfg.Admin.SSHCidrs[i] = netip.PrefixFrom(a, a.BitLen()).String()
		}
	}
}
