// Package seedkeys derives every key and internal password of a stack from one
// secret seed (belay:hostKeySeed): each server's SSH host key is known before it
// boots (pinned in the inventory, no trust on first use), and keys and passwords
// stay the same across `pulumi up` runs without any extra provider.
package seedkeys

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// MinSeedLen is the shortest seed accepted: 32 bytes of entropy, hex or base64 encoded by the user.
const MinSeedLen = 32

// Key is one host's SSH host key pair in the formats cloud-init and the inventory use.
type Key struct {
	// PrivatePEM is the OpenSSH private key (secret: only ever in secret user data).
	PrivatePEM string
	// Public is the public key in authorized_keys format, without a comment.
	Public string
}

// Derive returns the ed25519 host key of host within stack, from seed.
// The same inputs always give the same key; a different host, stack or
// generation gives an unrelated key. Bump generation to rotate one host's key.
func Derive(seed, stack, host string, generation int) (Key, error) {
	if len(seed) < MinSeedLen {
		return Key{}, fmt.Errorf("belay:hostKeySeed: %d characters, expected at least %d (e.g. `openssl rand -hex 32`)", len(seed), MinSeedLen)
	}
	if host == "" || strings.ContainsAny(host, "\x00/") {
		return Key{}, errors.New("seedkeys: host name is empty or has / or NUL")
	}
	info := fmt.Sprintf("belay host key v1\x00%s\x00%s\x00%d", stack, host, generation)
	raw, err := hkdf.Key(sha256.New, []byte(seed), nil, info, ed25519.SeedSize)
	if err != nil {
		return Key{}, fmt.Errorf("seedkeys: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(raw)
	pub, err := ssh.NewPublicKey(priv.Public())
	if err != nil {
		return Key{}, fmt.Errorf("seedkeys: %w", err)
	}
	return Key{
		PrivatePEM: string(pem.EncodeToMemory(&pem.Block{Type: "OPENSSH PRIVATE KEY", Bytes: openSSHPrivateKey(priv)})),
		Public:     strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))),
	}, nil
}

// openSSHPrivateKey encodes an unencrypted "openssh-key-v1" ed25519 key.
// x/crypto's ssh.MarshalPrivateKey fills the check words from crypto/rand, which
// would change the rendered user data (and so replace the server) on every run;
// here the check word comes from the key itself, so the bytes are stable.
func openSSHPrivateKey(priv ed25519.PrivateKey) []byte {
	str := func(b *bytes.Buffer, s []byte) {
		_ = binary.Write(b, binary.BigEndian, uint32(len(s)))
		b.Write(s)
	}
	pub := priv.Public().(ed25519.PublicKey)
	var pubBlob bytes.Buffer
	str(&pubBlob, []byte(ssh.KeyAlgoED25519))
	str(&pubBlob, pub)

	var private bytes.Buffer
	check := binary.BigEndian.Uint32(pub[:4])
	_ = binary.Write(&private, binary.BigEndian, check)
	_ = binary.Write(&private, binary.BigEndian, check)
	str(&private, []byte(ssh.KeyAlgoED25519))
	str(&private, pub)
	str(&private, priv) // seed || public, as OpenSSH stores it
	str(&private, nil)  // comment
	for i := byte(1); private.Len()%8 != 0; i++ {
		private.WriteByte(i)
	}

	var out bytes.Buffer
	out.WriteString("openssh-key-v1\x00")
	str(&out, []byte("none"))
	str(&out, []byte("none"))
	str(&out, nil)
	_ = binary.Write(&out, binary.BigEndian, uint32(1))
	str(&out, pubBlob.Bytes())
	str(&out, private.Bytes())
	return out.Bytes()
}

// Password derives a 32-character password for purpose (e.g. "postgres/app") within stack.
func Password(seed, stack, purpose string) (string, error) {
	if len(seed) < MinSeedLen {
		return "", fmt.Errorf("belay:hostKeySeed: %d characters, expected at least %d (e.g. `openssl rand -hex 32`)", len(seed), MinSeedLen)
	}
	raw, err := hkdf.Key(sha256.New, []byte(seed), nil, "belay password v1\x00"+stack+"\x00"+purpose, 24)
	if err != nil {
		return "", fmt.Errorf("seedkeys: %w", err)
	}
	// URL-safe base64 without padding: no quoting needed in YAML, libpq or shell.
	return base64.RawURLEncoding.EncodeToString(raw), nil
}
