package converge

import (
	"fmt"
	"path"
	"regexp"
	"strings"
)

var userRE = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)

// checkOwner accepts "user:group" with portable names.
func checkOwner(o string) error {
	u, g, ok := strings.Cut(o, ":")
	if !ok || !userRE.MatchString(u) || !userRE.MatchString(g) {
		return fmt.Errorf("owner %q, expected user:group", o)
	}
	return nil
}

// allowedDirPrefixes are where the roles' `install -d` directories live.
var allowedDirPrefixes = []string{"/srv/", "/var/lib/", "/var/log/", "/var/spool/", "/home/", "/etc/belay/"}

func allowedDir(p string) bool {
	if !path.IsAbs(p) || path.Clean(p) != p || strings.ContainsAny(p, "\x00\n") {
		return false
	}
	for _, pre := range allowedDirPrefixes {
		if strings.HasPrefix(p, pre) {
			return true
		}
	}
	return false
}
