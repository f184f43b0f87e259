package seedkeys

import (
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strings"
)

// ConvergeKey derives the ed25519 key that signs `belay converge` bundles of
// stack. Hosts hold only its public half (written root-only at first boot), so
// a host — or its deploy user — can verify a bundle but never forge one: only
// whoever holds belay:hostKeySeed can change a running server's configuration.
func ConvergeKey(seed, stack string) (ed25519.PrivateKey, error) {
	if len(seed) < MinSeedLen {
		return nil, fmt.Errorf("belay:hostKeySeed: %d characters, expected at least %d (e.g. `openssl rand -hex 32`)", len(seed), MinSeedLen)
	}
	if stack == "" {
		return nil, fmt.Errorf("seedkeys: converge key: empty stack name")
	}
	raw, err := hkdf.Key(sha256.New, []byte(seed), nil, "belay converge key v1\x00"+stack, ed25519.SeedSize)
	if err != nil {
		return nil, fmt.Errorf("seedkeys: %w", err)
	}
	return ed25519.NewKeyFromSeed(raw), nil
}

// ConvergePublic is the one-line text form of a converge public key, as the
// roles write it to the host ("ed25519 <base64>").
func ConvergePublic(priv ed25519.PrivateKey) string {
	return "ed25519 " + base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey))
}

// ParseConvergePublic reads ConvergePublic's form back.
func ParseConvergePublic(s string) (ed25519.PublicKey, error) {
	kind, b64, ok := strings.Cut(strings.TrimSpace(s), " ")
	if !ok || kind != "ed25519" {
		return nil, fmt.Errorf("converge public key: expected \"ed25519 <base64>\"")
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("converge public key: expected %d bytes of base64", ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(raw), nil
}
