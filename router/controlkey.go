package router

import "strings"

// ControlKey is the file of the control key next to the control socket
// (/run/belay-router/APP.key): nginx's master makes it (root, 0600) at
// start, and the control server answers only requests that carry it in
// HeaderControlKey (lua.go). The socket's directory is root 0700, but nginx
// makes every unix socket 0666: the key keeps a local user who reaches the
// socket through a mistake from pushing routes (TestControlSocketHostileUsers).
func ControlKey(socket string) string { return strings.TrimSuffix(socket, ".sock") + ".key" }

// HeaderControlKey carries the control key to the control server.
const HeaderControlKey = "X-Belay-Control-Key"
