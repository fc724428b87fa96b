#!/usr/bin/env bash
# Runs kd3's libFuzzer targets for a bounded time.
#
#   tests/fuzz/run.sh TARGET SECONDS [BUILD_DIR]   one target (frame, m1, ..., keyfile)
#   tests/fuzz/run.sh all SECONDS [BUILD_DIR]      every target, one after the other
#
# BUILD_DIR is a build tree configured with -DKD3_FUZZ=ON (default: build-fuzz at the
# top of the repository), or the directory holding the fuzz_* binaries.
# Each target fuzzes a working copy of its corpus, fuzz-work/TARGET/corpus next to the
# binaries (BUILD_DIR/tests/fuzz), seeded from tests/fuzz/corpus/TARGET and kept
# between runs, so long runs build on each other. A crash, leak or timeout leaves its
# input in fuzz-work/TARGET/artifacts/ and makes the script exit 1; add it (minimised)
# to tests/fuzz/corpus/TARGET/crash-<what> as a regression input.
# Environment: KD3_FUZZ_JOBS=N runs N processes per target (default 1);
# KD3_FUZZ_ARGS adds libFuzzer options.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
corpus_root=$here/corpus

usage() {
	echo "usage: $0 TARGET|all SECONDS [BUILD_DIR]" >&2
	local d names=""
	for d in "$corpus_root"/*/; do
		names="$names $(basename "$d")"
	done
	echo "targets:$names" >&2
	exit 2
}

[ $# -ge 2 ] || usage
target=$1
seconds=$2
build=${3:-$here/../../build-fuzz}
case $seconds in '' | *[!0-9]*) usage ;; esac

# The directory with the fuzz binaries: BUILD_DIR/tests/fuzz, or BUILD_DIR itself.
bin_dir() {
	for d in "$build/tests/fuzz" "$build"; do
		if [ -x "$d/fuzz_frame" ]; then
			echo "$d"
			return
		fi
	done
	echo "$0: no fuzz binaries under $build; configure with" >&2
	echo "  CC=clang cmake -S . -B build-fuzz -DKD3_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo" >&2
	echo "  cmake --build build-fuzz -j" >&2
	exit 2
}

# Largest input per target: room for the largest frame (and a stream of several),
# and for a key file past its 64 KiB limit.
max_len() {
	case $1 in
	frame | record) echo 17000 ;;
	stream | channel | initiator | responder) echo 40000 ;;
	api) echo 20000 ;;
	keyfile) echo 70000 ;;
	*) echo 4096 ;;
	esac
}

# Prints one summary line from a libFuzzer log.
summary() {
	local log=$1 t=$2 rc=$3
	local runs eps cov ft corp
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
	eps=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	ft=$(grep -o 'ft: [0-9]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	corp=$(grep -o 'corp: [0-9/]*[a-zA-Z]*' "$log" | tail -1 | cut -d' ' -f2 || true)
	printf '%-10s %5ss  runs %-10s exec/s %-7s cov %-5s ft %-6s corpus %-12s %s\n' \
		"$t" "$seconds" "${runs:-?}" "${eps:-?}" "${cov:-?}" "${ft:-?}" "${corp:-?}" \
		"$([ "$rc" = 0 ] && echo ok || echo "FAILED (see $log)")"
}

run_one() {
	local t=$1 dir bin work rc=0
	[ -d "$corpus_root/$t" ] || usage
	dir=$(bin_dir) || exit 2
	bin=$dir/fuzz_$t
	if ! "$bin" -help=1 2>&1 | grep max_total_time >/dev/null; then
		echo "$0: $bin is not a libFuzzer binary (configure with -DKD3_FUZZ=ON)" >&2
		exit 2
	fi
	work=$dir/fuzz-work/$t
	mkdir -p "$work/corpus" "$work/artifacts"
	cp -n "$corpus_root/$t"/* "$work/corpus/" 2>/dev/null || true
	local jobs=${KD3_FUZZ_JOBS:-1} extra=(-max_len="$(max_len "$t")")
	if [ "$jobs" -gt 1 ]; then
		extra+=(-fork="$jobs")
	fi
	if [ -f "$here/dict/$t.dict" ]; then
		extra+=(-dict="$here/dict/$t.dict")
	fi
	# shellcheck disable=SC2086 # KD3_FUZZ_ARGS is a list of options
	"$bin" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
		-artifact_prefix="$work/artifacts/" "${extra[@]}" ${KD3_FUZZ_ARGS:-} \
		"$work/corpus" >"$work/log" 2>&1 || rc=$?
	summary "$work/log" "$t" "$rc"
	if [ "$rc" != 0 ]; then
		grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$work/log" | head -5 >&2 || true
		return 1
	fi
}

if [ "$target" = all ]; then
	failed=0
	for d in "$corpus_root"/*/; do
		run_one "$(basename "$d")" || failed=1
	done
	exit "$failed"
fi
run_one "$target"
