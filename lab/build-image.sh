#!/bin/sh
# build-image.sh ROOTFS — builds belay's lab machine image: Debian 12 with every
# package a belay role needs, because lab machines have no route to any mirror
# (the same reason a cloud image carries them: user data installs nothing).
# Inputs (environment): BELAY_MIRROR, BELAY_SECURITY_MIRROR, BELAY_PACKAGES,
# BELAY_DEB_CACHE (download cache shared by rebuilds). Run by `belay lab up`; the
# image is cached under a hash of this script and those inputs.
set -eu
rootfs=$1
: "${BELAY_MIRROR:?}" "${BELAY_PACKAGES:?}" "${BELAY_DEB_CACHE:?}"
suite=bookworm
mkdir -p "$BELAY_DEB_CACHE/debootstrap" "$BELAY_DEB_CACHE/apt"

echo "== debootstrap $suite from $BELAY_MIRROR"
debootstrap --variant=minbase --cache-dir="$BELAY_DEB_CACHE/debootstrap" \
	--include=systemd,systemd-sysv,dbus,iproute2 "$suite" "$rootfs" "$BELAY_MIRROR"

{
	echo "deb $BELAY_MIRROR $suite main"
	echo "deb $BELAY_MIRROR $suite-updates main"
	if [ -n "${BELAY_SECURITY_MIRROR:-}" ]; then echo "deb $BELAY_SECURITY_MIRROR $suite-security main"; fi
} >"$rootfs/etc/apt/sources.list"

# Services must not start inside the build; the image is booted later.
printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
chmod 755 "$rootfs/usr/sbin/policy-rc.d"

# PostgreSQL clusters are created by the roles (pg_auto_failover, pgBackRest
# restore), never by the package: a default "main" cluster would hold port 5432.
mkdir -p "$rootfs/etc/postgresql-common/createcluster.d"
echo "create_main_cluster = false" >"$rootfs/etc/postgresql-common/createcluster.d/belay.conf"

echo "== apt-get install $BELAY_PACKAGES"
# systemd-nspawn (not a bare chroot) gives postinst scripts a real /proc, /dev and
# resolv.conf; --register=no --keep-unit because the host has no systemd as PID 1.
systemd-nspawn -q --register=no --keep-unit --pipe -D "$rootfs" \
	--bind="$BELAY_DEB_CACHE/apt:/var/cache/apt/archives" \
	--setenv=DEBIAN_FRONTEND=noninteractive --setenv=LANG=C.UTF-8 \
	/bin/sh -ec "apt-get update -q && apt-get -q -y -o Dpkg::Options::=--force-confold dist-upgrade && apt-get -q -y --no-install-recommends -o Dpkg::Options::=--force-confold install $BELAY_PACKAGES"

echo "== image settings"
# The image's locale is generated once here; cloud-init's locale module then finds
# it set and does not run locale-gen on every first boot.
sed -i 's/^# *en_US.UTF-8 UTF-8/en_US.UTF-8 UTF-8/' "$rootfs/etc/locale.gen"
systemd-nspawn -q --register=no --keep-unit --pipe -D "$rootfs" /bin/sh -ec 'locale-gen >/dev/null && update-locale LANG=en_US.UTF-8'
# A cloud image's NoCloud datasource: the lab seeds /var/lib/cloud/seed/nocloud.
cat >"$rootfs/etc/cloud/cloud.cfg.d/90-belay-lab.cfg" <<'CFG'
datasource_list: [ NoCloud, None ]
CFG
# cloud-init renders the seed's network-config for systemd-networkd (no ifupdown here).
systemd-nspawn -q --register=no --keep-unit --pipe -D "$rootfs" /bin/sh -ec '
systemctl enable systemd-networkd.service ssh.service cloud-init-local.service cloud-init.service cloud-config.service cloud-final.service
systemctl disable apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer fstrim.timer 2>/dev/null || true
systemctl mask console-getty.service getty@tty1.service
'
# The lab is IPv4 only (10.213.0.0/24). Without this, networkd keeps host0
# "configuring" while it solicits IPv6 router adverts nobody sends, and
# network-online (hence cloud-init) waits ~13 s on every boot. cloud-init 22.4's
# networkd renderer cannot express it from network-config, so the image carries it.
mkdir -p "$rootfs/etc/systemd/network/10-cloud-init-host0.network.d"
printf '[Network]\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' >"$rootfs/etc/systemd/network/10-cloud-init-host0.network.d/belay-lab-ipv4-only.conf"
# Per-machine identity comes at first boot: no shared host keys, no machine-id.
rm -f "$rootfs"/etc/ssh/ssh_host_*
: >"$rootfs/etc/machine-id"
rm -f "$rootfs/var/lib/dbus/machine-id"
rm -f "$rootfs/usr/sbin/policy-rc.d"
rm -rf "$rootfs/var/lib/apt/lists/"* "$rootfs/var/cache/apt/"*.bin
rm -rf "$rootfs/var/lib/cloud/"*
echo "== done: $(du -sm "$rootfs" | cut -f1) MB"
