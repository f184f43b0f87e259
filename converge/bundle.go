package converge

import (
	"bytes"
	"compress/gzip"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path"
	"strings"
)

// BundleVersion is the bundle format the root helper accepts.
const BundleVersion = 1

// MaxBundle bounds a bundle (decompressed) the root helper reads: the user
// data it comes from is capped at 32 KiB compressed by the providers anyway.
const MaxBundle = 8 << 20

// Bundle is what the root helper applies on one host. It is signed as a
// whole; nothing in it is trusted before the signature checks out.
type Bundle struct {
	Version int    `json:"version"`
	Stack   string `json:"stack"`
	Host    string `json:"host"`
	// Serial must be greater than the last one this host accepted (replays refused).
	Serial uint64 `json:"serial"`
	// Apply false only compares (the dry run); it still consumes Serial.
	Apply bool   `json:"apply"`
	Files []File `json:"files"`
	Users []User `json:"users,omitempty"`
	Dirs  []Dir  `json:"dirs,omitempty"`
}

// signed is the wire form: the payload bytes and their signature.
type signed struct {
	Payload   []byte `json:"payload"`
	Signature []byte `json:"signature"`
}

// sigContext binds the signature to this use of the key.
const sigContext = "belay converge bundle v1\x00"

// Sign encodes b, signs it with the stack's converge key, and returns the
// gzip-compressed wire form the root helper reads on stdin.
func Sign(priv ed25519.PrivateKey, b Bundle) ([]byte, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, errors.New("converge: sign: not an ed25519 private key")
	}
	b.Version = BundleVersion
	payload, err := json.Marshal(b)
	if err != nil {
		return nil, fmt.Errorf("converge: bundle: %w", err)
	}
	wire, err := json.Marshal(signed{Payload: payload, Signature: ed25519.Sign(priv, append([]byte(sigContext), payload...))})
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if _, err := zw.Write(wire); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ErrSignature is a bundle not signed by the stack's converge key.
var ErrSignature = errors.New("bundle signature does not verify with this host's converge key")

// Verify decompresses (when gzipped) and checks the wire form with pub, then
// decodes the bundle strictly. Only the signature makes its contents trusted.
func Verify(pub ed25519.PublicKey, wire []byte) (Bundle, error) {
	if len(wire) >= 2 && wire[0] == 0x1f && wire[1] == 0x8b {
		zr, err := gzip.NewReader(bytes.NewReader(wire))
		if err != nil {
			return Bundle{}, fmt.Errorf("bundle: %w", err)
		}
		raw, err := io.ReadAll(io.LimitReader(zr, MaxBundle+1))
		if err != nil {
			return Bundle{}, fmt.Errorf("bundle: %w", err)
		}
		if len(raw) > MaxBundle {
			return Bundle{}, fmt.Errorf("bundle: more than %d bytes decompressed", MaxBundle)
		}
		wire = raw
	}
	var s signed
	dec := json.NewDecoder(bytes.NewReader(wire))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return Bundle{}, fmt.Errorf("bundle: not a signed bundle: %w", err)
	}
	if len(pub) != ed25519.PublicKeySize || len(s.Signature) != ed25519.SignatureSize ||
		!ed25519.Verify(pub, append([]byte(sigContext), s.Payload...), s.Signature) {
		return Bundle{}, ErrSignature
	}
	var b Bundle
	dec = json.NewDecoder(bytes.NewReader(s.Payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		return Bundle{}, fmt.Errorf("bundle: payload: %w", err)
	}
	if b.Version != BundleVersion {
		return Bundle{}, fmt.Errorf("bundle: version %d, expected %d (belay on the host and here differ)", b.Version, BundleVersion)
	}
	return b, nil
}

// Check refuses a verified bundle that is not for this host, or that names a
// path converge does not manage (whatever signed it).
func (b Bundle) Check(host string) error {
	if b.Host != host {
		return fmt.Errorf("bundle is for host %q, this is %q", b.Host, host)
	}
	if b.Serial == 0 {
		return errors.New("bundle: serial 0, expected a positive serial")
	}
	seen := map[string]bool{}
	for _, f := range b.Files {
		if !Allowed(f.Path) || EffectOf(f.Path).Skip {
			return fmt.Errorf("bundle: file %q: not a path converge manages", f.Path)
		}
		if seen[f.Path] {
			return fmt.Errorf("bundle: file %q listed twice", f.Path)
		}
		seen[f.Path] = true
		if f.Mode > 0o777 || f.Mode&0o002 != 0 {
			return fmt.Errorf("bundle: file %s: mode %#o, expected no special bits and not world-writable", f.Path, f.Mode)
		}
		if err := checkOwner(f.Owner); err != nil {
			return fmt.Errorf("bundle: file %s: %w", f.Path, err)
		}
	}
	for _, d := range b.Dirs {
		if !allowedDir(d.Path) || d.Mode > 0o3777 || d.Mode&0o002 != 0 {
			return fmt.Errorf("bundle: directory %q: not one converge manages", d.Path)
		}
		if err := checkOwner(d.Owner); err != nil {
			return fmt.Errorf("bundle: directory %s: %w", d.Path, err)
		}
	}
	for _, u := range b.Users {
		// Users are only ever created when missing (useradd --system), never changed.
		if !userRE.MatchString(u.Name) || u.Name == "root" || !path.IsAbs(u.Home) || path.Clean(u.Home) != u.Home || strings.ContainsAny(u.Gecos, ":\n") {
			return fmt.Errorf("bundle: user %q (home %q): expected a system user name, a clean home and no : in its comment", u.Name, u.Home)
		}
		if u.Shell != "/usr/sbin/nologin" && u.Shell != "/bin/sh" && u.Shell != "/bin/bash" {
			return fmt.Errorf("bundle: user %s: shell %q", u.Name, u.Shell)
		}
	}
	return nil
}
