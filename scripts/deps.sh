# shellcheck shell=bash
# Sourced by scripts/quickstart.sh and scripts/test.sh: installs what belay and its
# tests need on a fresh Debian 12 machine, as root. Idempotent; apt-get update runs
# once, and only when something is missing.

belay_host_packages=(
  debootstrap systemd-container iproute2 nftables iptables
  openssh-client openssh-server sudo curl ca-certificates
  nginx libnginx-mod-http-lua keepalived
  postgresql-15 postgresql-15-auto-failover pg-auto-failover-cli pgbackrest restic
  pebble lego openssl
)

belay_install_deps() {
  if [ "$(id -u)" != 0 ]; then
    echo "belay: run as root (the lab needs systemd-nspawn, bridges and network namespaces)" >&2
    return 2
  fi
  local missing=()
  for p in "${belay_host_packages[@]}" "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    echo "belay: installing ${missing[*]}" >&2
    # Packages are tools here, not services: don't let postinst start nginx or
    # PostgreSQL on this host (or create a cluster on 5432); tests start their own.
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
    mkdir -p /etc/postgresql-common/createcluster.d
    echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.d/belay.conf
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    rm -f /usr/sbin/policy-rc.d
  fi
  if ! command -v go >/dev/null 2>&1; then
    if [ -x /usr/local/go/bin/go ]; then
      export PATH=/usr/local/go/bin:$PATH
    else
      echo "belay: Go >= 1.26 is needed (go.mod); install it to /usr/local/go" >&2
      return 2
    fi
  fi
}
