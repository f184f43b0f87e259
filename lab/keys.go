package lab

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"

	"golang.org/x/crypto/ssh"

	"github.com/belay-sh/belay/inventory"
)

// ensureSeed returns the lab's host-key seed, generating it once (0600). The lab
// never uses a real stack's seed, so no lab key is ever a production key.
func ensureSeed(p Paths) (string, error) {
	b, err := os.ReadFile(p.seed())
	if err == nil {
		s := strings.TrimSpace(string(b))
		if len(s) < 32 {
			return "", fmt.Errorf("lab seed %s: %d characters, expected 64 hex characters (delete it to generate a new one; host keys change)", p.seed(), len(s))
		}
		return s, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("lab seed: %w", err)
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("lab seed: %w", err)
	}
	s := hex.EncodeToString(raw)
	if err := writeFileAtomic(p.seed(), []byte(s+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("lab seed: %w", err)
	}
	return s, nil
}

// ensureAdminKey returns the authorized_keys line of the lab's admin key (the
// deploy user's login), generating the key pair once.
func ensureAdminKey(p Paths) (string, error) {
	pubPath := p.adminKey() + ".pub"
	if b, err := os.ReadFile(pubPath); err == nil {
		if _, err := os.Stat(p.adminKey()); err == nil {
			line := strings.TrimSpace(string(b))
			if _, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line)); err != nil {
				return "", fmt.Errorf("lab admin key %s: %w", pubPath, err)
			}
			return line, nil
		}
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return "", fmt.Errorf("lab admin key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "belay-lab-admin")
	if err != nil {
		return "", fmt.Errorf("lab admin key: %w", err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		return "", fmt.Errorf("lab admin key: %w", err)
	}
	line := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(sp))) + " belay-lab-admin"
	if err := writeFileAtomic(p.adminKey(), pem.EncodeToMemory(block), 0o600); err != nil {
		return "", fmt.Errorf("lab admin key: %w", err)
	}
	if err := writeFileAtomic(pubPath, []byte(line+"\n"), 0o644); err != nil {
		return "", fmt.Errorf("lab admin key: %w", err)
	}
	return line, nil
}

// AdminSigner loads the lab's admin key for x/crypto/ssh clients.
func AdminSigner(p Paths) (ssh.Signer, error) {
	b, err := os.ReadFile(p.adminKey())
	if err != nil {
		return nil, fmt.Errorf("lab admin key (run `belay lab up` first): %w", err)
	}
	s, err := ssh.ParsePrivateKey(b)
	if err != nil {
		return nil, fmt.Errorf("lab admin key %s: %w", p.adminKey(), err)
	}
	return s, nil
}

// knownHosts renders an OpenSSH known_hosts file pinning every host's key under
// its name and its SSH address.
func knownHosts(inv *inventory.Inventory) []byte {
	var lines []string
	for _, h := range inv.Hosts {
		names := []string{h.Name}
		addr := h.SSHAddress
		if h.SSHPort != 22 {
			addr = fmt.Sprintf("[%s]:%d", addr, h.SSHPort)
		}
		names = append(names, addr)
		lines = append(lines, strings.Join(names, ",")+" "+h.HostKey)
	}
	sort.Strings(lines)
	return []byte(strings.Join(lines, "\n") + "\n")
}
