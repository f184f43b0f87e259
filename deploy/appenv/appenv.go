// Package appenv is an app's configuration (environment variables) stored
// encrypted with the stack: one JSON file per stack and app, meant to be
// committed next to the stack files (stacks/env/<stack>/<app>.json).
//
// Why a file and not Pulumi secret config: the deploy path (CI, a laptop)
// reads the env without Pulumi credentials or a `pulumi up`, a change is a
// reviewable diff (which keys changed, never their values), and the key is
// derived from belay:hostKeySeed, the one secret the operator already keeps.
//
// Every value (secret or not) is sealed with XChaCha20-Poly1305 under a key
// derived by HKDF-SHA256 from the seed, the stack and the app; the associated
// data binds each value to its stack, app, key name and secret flag, so a value
// cannot be moved to another key or app, nor unmarked secret, by editing the
// file. A MAC over the whole set (names, flags, ciphertexts, serial) catches
// an added, removed or replayed entry. Replaying a whole older file is not
// detectable here: that is what the repository's history is for.
package appenv

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/chacha20poly1305"
)

// Version is the file format version.
const Version = 1

// MinSeedLen matches seedkeys.MinSeedLen: the seed is the stack's hostKeySeed.
const MinSeedLen = 32

// MaxValueLen bounds one value (an env var, not a file store).
const MaxValueLen = 32 << 10

// Var is one sealed variable as stored.
type Var struct {
	Secret bool `json:"secret,omitempty"`
	// Sealed is base64(nonce || ciphertext).
	Sealed string `json:"sealed"`
}

// File is the stored form of an app's env.
type File struct {
	Version int    `json:"version"`
	Stack   string `json:"stack"`
	App     string `json:"app"`
	// Serial counts changes; an env-only deploy is named after it (<release>.env<serial>).
	Serial int            `json:"serial"`
	Vars   map[string]Var `json:"vars"`
	MAC    string         `json:"mac"`
}

// Entry is one variable in the clear.
type Entry struct {
	Key    string
	Value  string
	Secret bool
}

// Env is an app's decrypted env.
type Env struct {
	Stack, App string
	Serial     int
	Vars       map[string]Entry
}

var keyRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)

// reserved are the names belay itself sets for every release.
var reserved = map[string]string{
	"DATABASE_URL": "belay sets it from the stack (the app's database role)",
	"PORT":         "belay sets it per unit (stable on the app port, the canary on port+1)",
}

// ValidateKey checks a variable name.
func ValidateKey(k string) error {
	switch {
	case !keyRE.MatchString(k) || len(k) > 128:
		return fmt.Errorf("key %q: expected [A-Z_][A-Z0-9_]* (at most 128 characters)", k)
	case strings.HasPrefix(k, "BELAY_"):
		return fmt.Errorf("key %q: BELAY_* is reserved for belay (BELAY_RELEASE, BELAY_SLOT, ...)", k)
	case reserved[k] != "":
		return fmt.Errorf("key %q: reserved, %s", k, reserved[k])
	}
	return nil
}

// ValidateValue checks a value: one line (the host file is KEY=VALUE lines).
func ValidateValue(k, v string) error {
	if strings.ContainsAny(v, "\n\r\x00") {
		return fmt.Errorf("key %s: the value has a newline or NUL, expected one line (encode multi-line values, e.g. base64)", k)
	}
	if len(v) > MaxValueLen {
		return fmt.Errorf("key %s: the value is %d bytes, at most %d", k, len(v), MaxValueLen)
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)

// Path is the env file of app in stack under dir (e.g. stacks/env).
func Path(dir, stack, app string) (string, error) {
	if !nameRE.MatchString(stack) || strings.Contains(stack, "..") {
		return "", fmt.Errorf("stack %q: expected a stack name (letters, digits, _ . -)", stack)
	}
	if !nameRE.MatchString(app) || strings.Contains(app, "..") {
		return "", fmt.Errorf("app %q: expected an app name", app)
	}
	return filepath.Join(dir, stack, app+".json"), nil
}

type keys struct{ aead, mac []byte }

func derive(seed, stack, app string) (keys, error) {
	if len(strings.TrimSpace(seed)) < MinSeedLen {
		return keys{}, fmt.Errorf("seed: %d characters, expected the stack's belay:hostKeySeed (at least %d)", len(strings.TrimSpace(seed)), MinSeedLen)
	}
	s := []byte(strings.TrimSpace(seed))
	a, err := hkdf.Key(sha256.New, s, nil, "belay app env v1 seal\x00"+stack+"\x00"+app, chacha20poly1305.KeySize)
	if err != nil {
		return keys{}, err
	}
	m, err := hkdf.Key(sha256.New, s, nil, "belay app env v1 mac\x00"+stack+"\x00"+app, 32)
	if err != nil {
		return keys{}, err
	}
	return keys{aead: a, mac: m}, nil
}

func aad(stack, app, key string, secret bool) []byte {
	return []byte("belay-env\x00" + stack + "\x00" + app + "\x00" + key + "\x00" + strconv.FormatBool(secret))
}

func (f *File) mac(k keys) string {
	h := hmac.New(sha256.New, k.mac)
	fmt.Fprintf(h, "belay-env v%d\x00%s\x00%s\x00%d\x00", f.Version, f.Stack, f.App, f.Serial)
	for _, name := range sortedNames(f.Vars) {
		v := f.Vars[name]
		fmt.Fprintf(h, "%s\x00%t\x00%s\x00", name, v.Secret, v.Sealed)
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Seal encrypts e for storage.
func Seal(e *Env, seed string) (*File, error) {
	k, err := derive(seed, e.Stack, e.App)
	if err != nil {
		return nil, err
	}
	a, err := chacha20poly1305.NewX(k.aead)
	if err != nil {
		return nil, err
	}
	f := &File{Version: Version, Stack: e.Stack, App: e.App, Serial: e.Serial, Vars: map[string]Var{}}
	for _, name := range sortedNames(e.Vars) {
		v := e.Vars[name]
		if err := ValidateKey(name); err != nil {
			return nil, err
		}
		if err := ValidateValue(name, v.Value); err != nil {
			return nil, err
		}
		nonce := make([]byte, a.NonceSize(), a.NonceSize()+len(v.Value)+a.Overhead())
		if _, err := rand.Read(nonce); err != nil {
			return nil, err
		}
		ct := a.Seal(nonce, nonce, []byte(v.Value), aad(e.Stack, e.App, name, v.Secret))
		f.Vars[name] = Var{Secret: v.Secret, Sealed: base64.StdEncoding.EncodeToString(ct)}
	}
	f.MAC = f.mac(k)
	return f, nil
}

// ErrWrongKey is an env file that does not open with the given seed (another
// stack's seed, or a file edited by hand).
var ErrWrongKey = errors.New("does not open with this stack's seed (wrong belay:hostKeySeed, or the file was edited)")

// Open checks and decrypts f, which must belong to stack and app.
func Open(f *File, name, seed, stack, app string) (*Env, error) {
	if f.Version != Version {
		return nil, fmt.Errorf("%s: version %d, expected %d", name, f.Version, Version)
	}
	if f.Stack != stack || f.App != app {
		return nil, fmt.Errorf("%s: holds the env of stack %q app %q, expected stack %q app %q", name, f.Stack, f.App, stack, app)
	}
	k, err := derive(seed, stack, app)
	if err != nil {
		return nil, err
	}
	if !hmac.Equal([]byte(f.MAC), []byte(f.mac(k))) {
		return nil, fmt.Errorf("%s: %w", name, ErrWrongKey)
	}
	a, err := chacha20poly1305.NewX(k.aead)
	if err != nil {
		return nil, err
	}
	e := &Env{Stack: stack, App: app, Serial: f.Serial, Vars: map[string]Entry{}}
	for _, key := range sortedNames(f.Vars) {
		v := f.Vars[key]
		if err := ValidateKey(key); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		raw, err := base64.StdEncoding.DecodeString(v.Sealed)
		if err != nil || len(raw) < a.NonceSize()+a.Overhead() {
			return nil, fmt.Errorf("%s: key %s: sealed value is not base64(nonce || ciphertext)", name, key)
		}
		pt, err := a.Open(nil, raw[:a.NonceSize()], raw[a.NonceSize():], aad(stack, app, key, v.Secret))
		if err != nil {
			return nil, fmt.Errorf("%s: key %s: %w", name, key, ErrWrongKey)
		}
		e.Vars[key] = Entry{Key: key, Value: string(pt), Secret: v.Secret}
	}
	return e, nil
}

// Load reads and opens the env file at path; a missing file is an empty env
// (serial 0) and needs no seed.
func Load(path, seed, stack, app string) (*Env, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return &Env{Stack: stack, App: app, Vars: map[string]Entry{}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("env file: %w", err)
	}
	var f File
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("%s: not a belay env file: %w", path, err)
	}
	return Open(&f, path, seed, stack, app)
}

// Save seals e and writes it atomically (0600: the file is ciphertext, but
// nobody else needs it).
func Save(path string, e *Env, seed string) error {
	f, err := Seal(e, seed)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("env file: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".env-*.tmp")
	if err != nil {
		return fmt.Errorf("env file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("env file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return fmt.Errorf("env file %s: %w", path, err)
	}
	return os.Rename(tmp.Name(), path)
}

// Assignment is one KEY=VALUE argument of `belay env set`.
type Assignment struct{ Key, Value string }

// ParseAssignments checks every argument before any is applied: a bad one
// changes nothing and is named.
func ParseAssignments(args []string) ([]Assignment, error) {
	var out []Assignment
	seen := map[string]bool{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return nil, fmt.Errorf("%q: expected KEY=VALUE", clip(a))
		}
		if err := ValidateKey(k); err != nil {
			return nil, err
		}
		if err := ValidateValue(k, v); err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, fmt.Errorf("key %s: given twice", k)
		}
		seen[k] = true
		out = append(out, Assignment{k, v})
	}
	return out, nil
}

// clip keeps an error from echoing a whole (maybe secret) value.
func clip(s string) string {
	if k, _, ok := strings.Cut(s, "="); ok {
		return k + "=…"
	}
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Set applies assignments and bumps the serial if anything changed.
func (e *Env) Set(as []Assignment, secret bool) (changed bool) {
	for _, a := range as {
		old, ok := e.Vars[a.Key]
		if ok && old.Value == a.Value && old.Secret == secret {
			continue
		}
		e.Vars[a.Key] = Entry{Key: a.Key, Value: a.Value, Secret: secret}
		changed = true
	}
	if changed {
		e.Serial++
	}
	return changed
}

// Unset removes keys (each must be valid; an absent one is an error naming it).
func (e *Env) Unset(keys []string) error {
	for _, k := range keys {
		if err := ValidateKey(k); err != nil {
			return err
		}
		if _, ok := e.Vars[k]; !ok {
			return fmt.Errorf("key %s: not set for app %s", k, e.App)
		}
	}
	for _, k := range keys {
		delete(e.Vars, k)
	}
	if len(keys) > 0 {
		e.Serial++
	}
	return nil
}

// Sorted returns the entries by key.
func (e *Env) Sorted() []Entry {
	out := make([]Entry, 0, len(e.Vars))
	for _, k := range sortedNames(e.Vars) {
		out = append(out, e.Vars[k])
	}
	return out
}

// Render is the file the release carries: KEY=VALUE lines, read by the
// app's own exec wrapper (belay-app-run) as the app user.
func (e *Env) Render() []byte {
	var b strings.Builder
	b.WriteString("# belay env of " + e.App + " (stack " + e.Stack + ", serial " + strconv.Itoa(e.Serial) + ")\n")
	for _, v := range e.Sorted() {
		b.WriteString(v.Key + "=" + v.Value + "\n")
	}
	return []byte(b.String())
}

// Mask is what `belay env list` shows for a secret value.
const Mask = "********"
