// Package lab runs a whole belay stack as real machines on one Linux box: one
// systemd-nspawn machine per server of topology.Plan, booted from a cached
// Debian 12 image (debootstrap + every role's packages) through a per-machine
// overlay on its own size-limited disk, on two bridged sites (belay-p
// 10.213.0.0/25, belay-s 10.213.0.128/25) joined by a router namespace, with
// the deployer's legs at .126 and .254 and no route off 10.213.0.0/24. Each
// machine gets what a cloud gives a server: its address (NoCloud
// network-config), its name, and exactly the user data roles.Render produced
// for hostspec.Build — nothing else is configured behind cloud-init's back.
// The hosts that keep their state on a cloud volume get a second disk (a
// sparse file on a loop device, bound in as /dev/belay-data) that outlives
// their root: Replace throws a machine's root away and boots it again from the
// same seed with that disk kept, as a provider replacement keeps the volume.
// Up writes the same inventory a cloud stack outputs, with pinned host keys.
// Faults (kill, stop-service, cut-link, netem, fill-disk, partition) are
// recorded in the lab state and undone by Heal and by Down.
package lab
