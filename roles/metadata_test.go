package roles

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// keepalivedScriptTestUID is the uid the test passwd gives keepalived_script.
const keepalivedScriptTestUID = 64990

// passwdWithRoleUsers writes the machine's /etc/passwd plus the users the
// rendered rulesets name, for a bind mount over /etc/passwd in a namespace.
func passwdWithRoleUsers(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Skipf("no /etc/passwd: %v", err)
	}
	extra := fmt.Sprintf("%s:x:%d:%d::/nonexistent:/usr/sbin/nologin\n", KeepalivedScriptUser, keepalivedScriptTestUID, keepalivedScriptTestUID)
	return writeTemp(t, t.TempDir(), "passwd", string(b)+extra, 0o644)
}

func TestMetadataRuleRendered(t *testing.T) {
	for name, tc := range map[string]struct {
		mk   func(testing.TB) *Spec
		want string
	}{
		"app":         {abAppSpec, "meta skuid != { root, keepalived_script } drop"},
		"standby-app": {abStandbyAppSpec, "meta skuid != { root } drop"},
		"backup-repo": {abBackupSpec, "meta skuid != { root } drop"},
	} {
		t.Run(name, func(t *testing.T) {
			c, _ := renderParsed(t, tc.mk(t))
			line := ruleLine(fileAt(t, c, nftablesConf).Content, "metadata service")
			if !strings.HasPrefix(line, "ip daddr 169.254.169.254 ") || !strings.Contains(line, tc.want) {
				t.Errorf("metadata rule = %q, want %q", line, tc.want)
			}
		})
	}
}

// TestMetadataHelperServer is not a test: TestMetadataBlockedInNamespace runs
// the test binary with this name to serve HTTP inside its network namespace.
func TestMetadataHelperServer(t *testing.T) {
	addr := os.Getenv("BELAY_METADATA_HELPER")
	if addr == "" {
		t.Skip("helper process only")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("listening")
	_ = http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprintln(w, "secret-user-data") }))
}

// TestMetadataBlockedInNamespace loads the app server's rendered ruleset in a
// network namespace of its own where 169.254.169.254 is on a dummy interface
// with an HTTP server behind it: root and keepalived_script fetch it, any
// other uid (belay-app, the deploy user, nobody) cannot. Nothing outside the
// namespace is touched: its own network, its own mount of /etc/passwd.
func TestMetadataBlockedInNamespace(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the check runs curl as other real uids in a network namespace (run the roles tests as root to include it)")
	}
	nft, unshare, curl, setpriv := tool(t, "nft"), tool(t, "unshare"), tool(t, "curl"), tool(t, "setpriv")
	ip := tool(t, "ip")
	c, _ := renderParsed(t, abAppSpec(t))
	dir := t.TempDir()
	conf := writeTemp(t, dir, "nftables.conf", fileAt(t, c, nftablesConf).Content, 0o644)
	pw := passwdWithRoleUsers(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	script := `set -u
mount --bind "$PW" /etc/passwd
"$IP" link set lo up
# A dummy interface where the kernel has the module, else one end of a veth
# pair (containers often lack the dummy module); either way the address is
# local to the namespace, as the provider's is one hop away.
if "$IP" link add meta0 type dummy 2>/dev/null; then echo "iface: dummy"; else "$IP" link add meta0 type veth peer name meta1 && "$IP" link set meta1 up && echo "iface: veth"; fi
"$IP" addr add 169.254.169.254/32 dev meta0
"$IP" link set meta0 up
BELAY_METADATA_HELPER=169.254.169.254:80 "$SELF" -test.run='^TestMetadataHelperServer$' > "$DIR/server.log" 2>&1 &
srv=$!
trap 'kill $srv' EXIT
i=0; until grep -q listening "$DIR/server.log"; do i=$((i+1)); [ $i -lt 300 ] || { echo "helper server did not start"; cat "$DIR/server.log"; exit 2; }; sleep 0.1; done
"$NFT" -f "$CONF" || exit 3
fetch() { "$SETPRIV" --reuid="$1" --regid="$1" --clear-groups "$CURL" -sf --max-time 2 http://169.254.169.254/ >/dev/null && echo "uid $1: fetched" || echo "uid $1: blocked"; }
fetch 0
fetch ` + fmt.Sprint(keepalivedScriptTestUID) + `
fetch 65534
fetch 1000
`
	cmd := exec.Command(unshare, "--net", "--mount", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "PW="+pw, "IP="+ip, "SELF="+self, "DIR="+dir, "NFT="+nft, "CONF="+conf, "SETPRIV="+setpriv, "CURL="+curl)
	out, err := cmd.CombinedOutput()
	if err != nil {
		if b, _ := os.ReadFile(filepath.Join(dir, "server.log")); len(b) > 0 {
			t.Logf("server: %s", b)
		}
		t.Fatalf("namespace script: %v\n%s", err, out)
	}
	got := string(out)
	t.Logf("%s", got)
	for _, want := range []string{"uid 0: fetched", fmt.Sprintf("uid %d: fetched", keepalivedScriptTestUID), "uid 65534: blocked", "uid 1000: blocked"} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
}
