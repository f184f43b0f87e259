package seedkeys

import (
	"bytes"
	"crypto/hkdf"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"

	"golang.org/x/crypto/ssh"
)

// UserCert signs pub (authorized_keys format) with ca as an OpenSSH user
// certificate valid for principal only, with no extensions (no pty, no
// forwarding: sshd grants the restic users nothing beyond their forced sftp)
// and no expiry. Rotation is a new CA generation, not an expiry: a
// certificate with a validity window would change the rendered user data
// (and replace the server) every time it is re-signed.
//
// The output is byte-stable for the same inputs: the nonce and serial are
// derived from the CA, the key and the principal (x/crypto would draw the
// nonce from rand), and ed25519 signatures are deterministic.
func UserCert(ca Key, pub, principal string) (string, error) {
	if principal == "" || strings.ContainsAny(principal, " ,\t\n\x00") {
		return "", fmt.Errorf("seedkeys: certificate principal %q: expected one user name", principal)
	}
	signer, err := ssh.ParsePrivateKey([]byte(ca.PrivatePEM))
	if err != nil {
		return "", fmt.Errorf("seedkeys: certificate authority key: %w", err)
	}
	key, _, _, _, err := ssh.ParseAuthorizedKey([]byte(pub))
	if err != nil {
		return "", fmt.Errorf("seedkeys: certificate subject key: %w", err)
	}
	if _, isCert := key.(*ssh.Certificate); isCert {
		return "", errors.New("seedkeys: certificate subject key: a certificate, expected a plain public key")
	}
	info := "belay user certificate v1\x00" + principal
	raw, err := hkdf.Key(sha256.New, append(signer.PublicKey().Marshal(), key.Marshal()...), nil, info, 40)
	if err != nil {
		return "", fmt.Errorf("seedkeys: %w", err)
	}
	var serial uint64
	for _, b := range raw[32:] {
		serial = serial<<8 | uint64(b)
	}
	cert := &ssh.Certificate{
		Key:             key,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           principal,
		ValidPrincipals: []string{principal},
		ValidAfter:      0,
		ValidBefore:     ssh.CertTimeInfinity,
	}
	// SignCert reads the nonce from its reader; the signature itself
	// (ed25519) uses no randomness.
	if err := cert.SignCert(bytes.NewReader(raw[:32]), signer); err != nil {
		return "", fmt.Errorf("seedkeys: sign certificate for %s: %w", principal, err)
	}
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(cert))), nil
}
