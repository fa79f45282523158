#!/usr/bin/env bash
# Installs the named Debian packages that are missing, as root, without starting
# the distribution's own services for them (kadm runs etcd itself; a distro
# etcd.service would take port 2379). Safe to run again: installed packages are skipped.
set -euo pipefail

missing=()
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
if [ ${#missing[@]} -eq 0 ]; then
    exit 0
fi
if [ "$(id -u)" != 0 ]; then
    echo "error: missing packages (${missing[*]}) and not root; run as root or install them with apt-get" >&2
    exit 1
fi
echo "installing: ${missing[*]}"
# policy-rc.d 101 = "do not start services during this install".
policy=/usr/sbin/policy-rc.d
restore=""
if [ -e "$policy" ]; then restore=$(mktemp); cp -p "$policy" "$restore"; fi
printf '#!/bin/sh\nexit 101\n' > "$policy"
chmod 755 "$policy"
cleanup() {
    if [ -n "$restore" ]; then mv "$restore" "$policy"; else rm -f "$policy"; fi
}
trap cleanup EXIT
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}"
# On systemd hosts keep the distro units that would fight kadm for ports disabled.
if [ -d /run/systemd/system ]; then
    for unit in etcd.service docker-registry.service; do
        systemctl disable --now "$unit" >/dev/null 2>&1 || true
    done
fi
