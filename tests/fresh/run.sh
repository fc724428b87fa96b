#!/usr/bin/env bash
# README's two commands, as written, on a fresh Debian 12 root (issue 14, item 7).
#
#   sudo tests/fresh/run.sh            # or as root; about 15 minutes on 2 cores
#   KD3_FRESH_KEEP=1 tests/fresh/run.sh  # keep the root afterwards (its path is printed)
#
# Builds a minimal bookworm root with mmdebstrap (installed with apt-get when missing)
# in a temporary folder, clones this checkout's HEAD into it (what is committed, not the
# work tree), mounts /proc, /sys and /dev into it, and runs there, as root as CI does,
# the first two commands of README's first ```sh block: the first installs the
# dependencies, builds and runs the demo; the second runs the test suite. Each one's
# output goes to the root's /fresh-N.log and its tail here; the exit code is the first
# failure's. The root needs network access to Debian's mirror (deb.debian.org) and
# nothing else: the tests talk to loopback only.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
[ "$(id -u)" -eq 0 ] || { echo "fresh: run as root (mmdebstrap, chroot and mounts need it)" >&2; exit 2; }
command -v mmdebstrap >/dev/null || {
	echo "fresh: installing mmdebstrap"
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends mmdebstrap >/dev/null
}

# README's commands: the first two lines of its first sh block (comments dropped).
mapfile -t commands < <(awk '/^```sh$/ {inside = 1; next} inside && /^```/ {exit}
	inside && NF {sub(/[ \t]+#.*$/, ""); print}' "$src/README.md" | head -2)
[ ${#commands[@]} -eq 2 ] || { echo "fresh: README has no two commands in its first sh block" >&2; exit 2; }

root=$(mktemp -d /var/tmp/kd3-fresh.XXXXXX)
mounted=()
cleanup() {
	for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[i]}" 2>/dev/null || true; done
	if [ -n "${KD3_FRESH_KEEP:-}" ]; then echo "fresh: kept $root"; else rm -rf "$root"; fi
}
trap cleanup EXIT

echo "fresh: a Debian 12 root in $root"
mmdebstrap --quiet --variant=apt --include=ca-certificates,git bookworm "$root" \
	http://deb.debian.org/debian
git clone -q "$src" "$root/kd3"
for m in proc sys dev dev/pts; do
	mount --bind "/$m" "$root/$m"
	mounted+=("$root/$m")
done
cp /etc/resolv.conf "$root/etc/resolv.conf"

status=0
for n in 0 1; do
	echo "fresh: README command $((n + 1)): ${commands[n]}"
	start=$(date +%s)
	if chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/sbin:/usr/bin:/sbin:/bin CI=true \
		bash -c "cd /kd3 && ${commands[n]}" >"$root/fresh-$((n + 1)).log" 2>&1 </dev/null; then
		echo "fresh: command $((n + 1)) passed in $(($(date +%s) - start)) s"
	else
		status=$?
		echo "fresh: command $((n + 1)) FAILED (exit $status) after $(($(date +%s) - start)) s"
	fi
	tail -n 15 "$root/fresh-$((n + 1)).log" | sed 's/^/  | /'
	[ $status -eq 0 ] || break
done
exit $status
