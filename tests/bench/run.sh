#!/usr/bin/env bash
# kd3 benchmarks, one command: builds into build-bench/ (RelWithDebInfo), runs every
# benchmark side by side with its reference, writes tests/bench/RESULTS.md.
#
#   tests/bench/run.sh [--with-krb5] [--quick] [--rounds N] [--keep]
#
# --with-krb5 installs Debian's krb5-kdc, krb5-admin-server (kadmin.local) and
# libkrb5-dev when missing (apt-get, non-interactive; root or sudo) and measures MIT
# Kerberos's krb5kdc in the same run. --quick: 3 rounds of 1.5 s runs and 10k
# principals (instead of 5 rounds of 3 s and 10k + 100k). tests/bench/README.md says
# what each number is.
set -euo pipefail

src=$(cd "$(dirname "$0")/../.." && pwd)
build=${KD3_BENCH_BUILD:-$src/build-bench}
with_krb5=0
for arg in "$@"; do
	[ "$arg" = --with-krb5 ] && with_krb5=1
done

if [ "$with_krb5" = 1 ]; then
	missing=()
	command -v krb5kdc >/dev/null || missing+=(krb5-kdc)
	command -v kadmin.local >/dev/null || missing+=(krb5-admin-server)
	pkg-config --exists krb5 2>/dev/null || missing+=(libkrb5-dev)
	if [ ${#missing[@]} -gt 0 ]; then
		sudo=
		[ "$(id -u)" = 0 ] || sudo=sudo
		echo "run.sh: installing ${missing[*]}" >&2
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -q
		$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
			"${missing[@]}"
	fi
fi

# Configure (again: krb5load is built only once libkrb5-dev is there) and build.
log=$build/bench-build.log
mkdir -p "$build"
if ! { cmake -S "$src" -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo &&
	cmake --build "$build" -j"$(nproc)"; } >"$log" 2>&1; then
	tail -30 "$log" >&2
	echo "run.sh: the build failed (whole log: $log)" >&2
	exit 1
fi
if [ "$with_krb5" = 1 ] && [ ! -x "$build/tests/bench/krb5load" ]; then
	echo "run.sh: krb5load was not built (libkrb5-dev missing?)" >&2
	exit 1
fi

exec /usr/bin/python3 -B "$src/tests/bench/bench.py" --build "$build" "$@"
