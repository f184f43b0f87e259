package plan

// Restart exposes the restart script to the shell tests.
var Restart = restart
