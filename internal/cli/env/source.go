// Package env holds `belay env set|unset|list`: an app's configuration, stored
// sealed with the stack (deploy/appenv). Setting a value touches no host: the
// next `belay deploy` (or `belay deploy --env-only`) carries it through the
// canary like any release.
package env

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/pflag"

	"github.com/belay-sh/belay/deploy/appenv"
)

// DefaultDir is where env files live, relative to the working directory (the
// repository holding stacks/Pulumi.<stack>.yaml).
const DefaultDir = "stacks/env"

// LabSeed is the lab's own host-key seed (`belay lab up` writes it).
const LabSeed = "/var/lib/belay/lab/seed"

// Source says where an app's env file and the stack's seed are.
type Source struct {
	Dir      string
	SeedFile string
}

// Flags adds --env-dir and --seed-file.
func (s *Source) Flags(fl *pflag.FlagSet) {
	fl.StringVar(&s.Dir, "env-dir", DefaultDir, "directory of the sealed env files (<dir>/<stack>/<app>.json)")
	fl.StringVar(&s.SeedFile, "seed-file", "", "file holding the stack's belay:hostKeySeed, which seals the env (or $BELAY_HOST_KEY_SEED; the lab's own seed for stack lab)")
}

// Seed returns the seed: --seed-file, else $BELAY_HOST_KEY_SEED, else the lab's
// seed for stack "lab". The error says how to give it.
func (s *Source) Seed(stack string, getenv func(string) string) (string, error) {
	if s.SeedFile != "" {
		b, err := os.ReadFile(s.SeedFile)
		if err != nil {
			return "", fmt.Errorf("--seed-file: %w", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	if v := strings.TrimSpace(getenv("BELAY_HOST_KEY_SEED")); v != "" {
		return v, nil
	}
	if stack == "lab" {
		b, err := os.ReadFile(LabSeed)
		if err != nil {
			return "", fmt.Errorf("the lab's seed: %w (give --seed-file)", err)
		}
		return strings.TrimSpace(string(b)), nil
	}
	return "", fmt.Errorf("stack %s: the env is sealed with belay:hostKeySeed: give --seed-file or set BELAY_HOST_KEY_SEED (pulumi config get belay:hostKeySeed --stack %s)", stack, stack)
}

// Path is the app's env file.
func (s *Source) Path(stack, app string) (string, error) {
	dir := s.Dir
	if dir == "" {
		dir = DefaultDir
	}
	return appenv.Path(dir, stack, app)
}

// Load opens the app's env. A missing file is an empty env and needs no seed.
func (s *Source) Load(stack, app string, getenv func(string) string) (*appenv.Env, string, error) {
	p, err := s.Path(stack, app)
	if err != nil {
		return nil, "", err
	}
	if _, err := os.Stat(p); os.IsNotExist(err) {
		e, err := appenv.Load(p, "", stack, app)
		return e, p, err
	}
	seed, err := s.Seed(stack, getenv)
	if err != nil {
		return nil, p, err
	}
	e, err := appenv.Load(p, seed, stack, app)
	return e, p, err
}
