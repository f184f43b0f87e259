package config_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/belay-sh/belay/config"
)

// setPulumiEnv sets the variables the Pulumi engine gives a program.
func setPulumiEnv(t *testing.T, values map[string]string, secret []string) {
	t.Helper()
	b, err := json.Marshal(values)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvPulumiConfig, string(b))
	if secret == nil {
		t.Setenv(config.EnvPulumiConfigSecretKeys, "")
		return
	}
	s, err := json.Marshal(secret)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv(config.EnvPulumiConfigSecretKeys, string(s))
}

func TestFromPulumiEnv(t *testing.T) {
	want := valid().values(t)
	want["hcloud:token"] = "x"
	setPulumiEnv(t, want, nil)
	got, err := config.FromPulumiEnv()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) || got["belay:apps"] != want["belay:apps"] || got["hcloud:token"] != "x" {
		t.Errorf("FromPulumiEnv = %v, want %v", got, want)
	}

	t.Setenv(config.EnvPulumiConfig, "")
	got, err = config.FromPulumiEnv()
	if err != nil || len(got) != 0 {
		t.Errorf("unset PULUMI_CONFIG = %v, %v; want empty, nil", got, err)
	}

	t.Setenv(config.EnvPulumiConfig, `{"belay:sites": {"primary": 1}}`) // values must be strings
	if _, err := config.FromPulumiEnv(); err == nil || !strings.Contains(err.Error(), "PULUMI_CONFIG: expected a JSON object of string values") {
		t.Errorf("malformed PULUMI_CONFIG error = %v", err)
	}
}

func TestParsePulumiEnv(t *testing.T) {
	vals := valid().values(t)
	vals["belay:typo"] = "{}"
	setPulumiEnv(t, vals, []string{"belay:hostKeySeed"})
	_, err := config.ParsePulumiEnv()
	if err == nil || findLine(err, "belay:typo") == "" {
		t.Fatalf("unknown key in PULUMI_CONFIG not refused: %v", err)
	}

	delete(vals, "belay:typo")
	setPulumiEnv(t, vals, []string{"belay:hostKeySeed"})
	if _, err := config.ParsePulumiEnv(); err != nil {
		t.Fatalf("ParsePulumiEnv: %v", err)
	}

	// The seed was set without --secret: refused, naming the fix.
	setPulumiEnv(t, vals, []string{})
	_, err = config.ParsePulumiEnv()
	if line := findLine(err, "belay:hostKeySeed"); !strings.Contains(line, "stored in plain text, expected a secret (pulumi config set --secret") {
		t.Errorf("plain-text seed error = %v", err)
	}

	// Secret keys unknown (variable unset): no plain-text check possible, config accepted.
	setPulumiEnv(t, vals, nil)
	if _, err := config.ParsePulumiEnv(); err != nil {
		t.Errorf("ParsePulumiEnv without secret keys: %v", err)
	}

	t.Setenv(config.EnvPulumiConfigSecretKeys, "belay:hostKeySeed")
	if _, err := config.ParsePulumiEnv(); err == nil || !strings.Contains(err.Error(), "PULUMI_CONFIG_SECRET_KEYS") {
		t.Errorf("malformed secret keys error = %v", err)
	}
}
