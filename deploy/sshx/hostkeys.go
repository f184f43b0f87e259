package sshx

// Trust and identity: the pinned host key check (never trust on first use)
// and the client's keys from the agent or key files.

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyError reports a host key that is not the pinned one; no command ran.
type HostKeyError struct {
	Host string
	Addr string
	// Got is the key the server presented (authorized_keys format).
	Got string
	// Reason says why it was refused (changed key, unknown key).
	Reason string
}

func (e *HostKeyError) Error() string {
	return fmt.Sprintf("host %s (%s): host key refused: %s; server presented %s "+
		"(if the server was rebuilt on purpose, update the inventory's hostKey)", e.Host, e.Addr, e.Reason, strings.TrimSpace(e.Got))
}

// HostKeyCallback builds the strict callback for t: the presented key must equal
// one of t.HostKeys; with no pinned key it must be known in the known_hosts files.
func HostKeyCallback(t Target, knownHostsFiles []string) (ssh.HostKeyCallback, error) {
	var kh ssh.HostKeyCallback
	if len(knownHostsFiles) > 0 {
		var err error
		kh, err = knownhosts.New(knownHostsFiles...)
		if err != nil {
			return nil, fmt.Errorf("known_hosts: %w", err)
		}
	}
	if len(t.HostKeys) == 0 && kh == nil {
		return nil, fmt.Errorf("host %s: no pinned host key and no known_hosts file: refusing to connect unverified", t.Name)
	}
	return func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		got := string(ssh.MarshalAuthorizedKey(key))
		refuse := func(reason string) error {
			return &HostKeyError{Host: t.Name, Addr: t.Addr, Got: got, Reason: reason}
		}
		if len(t.HostKeys) > 0 {
			for _, k := range t.HostKeys {
				if bytes.Equal(k.Marshal(), key.Marshal()) {
					return nil
				}
			}
			for _, k := range t.HostKeys {
				if k.Type() == key.Type() {
					return refuse("CHANGED: it differs from the pinned " + k.Type() + " key " + ssh.FingerprintSHA256(k))
				}
			}
			return refuse("unknown: no pinned key of type " + key.Type())
		}
		if _, _, err := net.SplitHostPort(remote.String()); err != nil {
			// A pipe or unix socket (tests, proxies): known_hosts matches on hostname alone.
			remote = &net.TCPAddr{IP: net.IPv4zero}
		}
		if err := kh(hostname, remote, key); err != nil {
			var ke *knownhosts.KeyError
			if errors.As(err, &ke) && len(ke.Want) > 0 {
				return refuse("CHANGED: known_hosts " + ke.Want[0].Filename + ":" + strconv.Itoa(ke.Want[0].Line) + " has a different key")
			}
			return refuse("unknown: not in known_hosts (" + err.Error() + ")")
		}
		return nil
	}, nil
}

// AuthFromEnv returns key-based auth: the SSH agent at SSH_AUTH_SOCK if set, then
// the given private key files (unencrypted; use the agent for passphrase keys).
// The closer releases the agent connection.
func AuthFromEnv(sock string, keyFiles []string) ([]ssh.AuthMethod, io.Closer, error) {
	var signers []ssh.Signer
	var closer io.Closer = io.NopCloser(nil)
	var methods []ssh.AuthMethod
	if sock != "" {
		conn, err := net.Dial("unix", sock)
		if err != nil {
			return nil, nil, fmt.Errorf("ssh agent SSH_AUTH_SOCK=%s: %w", sock, err)
		}
		closer = conn
		methods = append(methods, ssh.PublicKeysCallback(agent.NewClient(conn).Signers))
	}
	for _, f := range keyFiles {
		pem, err := os.ReadFile(f)
		if err != nil {
			closer.Close()
			return nil, nil, fmt.Errorf("ssh key: %w", err)
		}
		s, err := ssh.ParsePrivateKey(pem)
		if err != nil {
			closer.Close()
			return nil, nil, fmt.Errorf("ssh key %s: %w (passphrase-protected keys: load them into ssh-agent)", f, err)
		}
		signers = append(signers, s)
	}
	if len(signers) > 0 {
		methods = append(methods, ssh.PublicKeys(signers...))
	}
	if len(methods) == 0 {
		return nil, nil, errors.New("ssh auth: no SSH_AUTH_SOCK agent and no --ssh-key file; give one")
	}
	return methods, closer, nil
}

// HostKeyAlgorithms are the handshake algorithms to ask for when k is the
// pinned host key. An RSA key is one key type but three signature algorithms:
// rsa-sha2-512/256 first (OpenSSH 8.8+ servers offer nothing else), SHA-1
// ssh-rsa last for servers older than OpenSSH 7.2.
func HostKeyAlgorithms(k ssh.PublicKey) []string {
	if k.Type() == ssh.KeyAlgoRSA {
		return []string{ssh.KeyAlgoRSASHA512, ssh.KeyAlgoRSASHA256, ssh.KeyAlgoRSA}
	}
	return []string{k.Type()}
}
