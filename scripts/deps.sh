#!/usr/bin/env bash
# Installs what kd3 needs to build and test, from Debian 12's packages, when missing.
# Runs apt-get as root (directly, or through sudo when we are not root).
set -euo pipefail

packages=(
	build-essential cmake pkg-config
	libmbedtls-dev libsqlite3-dev libpq-dev postgresql-15 libinih-dev libcjson-dev libcmocka-dev libedit-dev libmicrohttpd-dev libc-ares-dev
	python3 python3-cryptography python3-pyte python3-jsonschema python3-prometheus-client tshark valgrind gdb groff-base man-db file dnsmasq-base
	debhelper lintian systemd
)

missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	echo "deps: all packages present"
	exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
	command -v sudo >/dev/null || { echo "deps: need root or sudo to install: ${missing[*]}" >&2; exit 1; }
	sudo="sudo"
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "deps: done"
