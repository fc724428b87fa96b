#!/usr/bin/env bash
# The protocol core (codec, key schedule, record layer, state machines, stream framing,
# crypto calls) built for a microcontroller: Cortex-M4F, -Os, newlib, no malloc and no
# stdio. Mbed TLS is taken as headers only (the device links its own build), so the
# object files are checked and measured, not linked. Prints the code size
# (arm-none-eabi-size) and fails when the core calls an allocator or stdio.
#
#   scripts/cortex-m.sh [OUT_DIR]      (installs gcc-arm-none-eabi when missing)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build-cortex-m4}

need=()
for p in gcc-arm-none-eabi libnewlib-arm-none-eabi libmbedtls-dev; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
		"${need[@]}" >/dev/null
fi

core=(buf msg schedule channel peer stream crypto err)
rm -rf "$out"
mkdir -p "$out/include"
# Mbed TLS's headers alone, not the host's whole /usr/include (newlib has its own libc).
ln -s /usr/include/mbedtls "$out/include/mbedtls"
cflags=(-mcpu=cortex-m4 -mthumb -mfloat-abi=hard -mfpu=fpv4-sp-d16 -Os -std=c11
	-D_POSIX_C_SOURCE=200809L -ffunction-sections -fdata-sections -Wall -Wextra -Werror
	-Ishared -Iinclude -isystem "$out/include")
for f in "${core[@]}"; do
	arm-none-eabi-gcc "${cflags[@]}" -c "shared/$f.c" -o "$out/$f.o"
done

# One relocatable object of the whole core (what a device's link would pull in); what
# it still needs from outside: Mbed TLS, string.h, the compiler's helpers.
objs=()
for f in "${core[@]}"; do objs+=("$out/$f.o"); done
arm-none-eabi-ld -r -o "$out/kd3core.o" "${objs[@]}"
undefined=$(arm-none-eabi-nm -u "$out/kd3core.o" | awk '{print $NF}' | sort -u)
bad=$(grep -E -x '(malloc|calloc|realloc|free|.*printf.*|puts|putchar|fopen|fclose|fwrite|fread|fputs|fflush|abort|exit|time|clock_gettime|getrandom)' <<<"$undefined" || true)
if [ -n "$bad" ]; then
	echo "cortex-m: the protocol core calls what a device may not have:" $bad >&2
	exit 1
fi
other=$(grep -v -E '^(mbedtls_|mem(cpy|set|move|cmp)$|str(len|nlen|cmp|chr)$|__aeabi_)' <<<"$undefined" || true)
if [ -n "$other" ]; then
	echo "cortex-m: unexpected external symbols:" $other >&2
	exit 1
fi

echo "Cortex-M4 (arm-none-eabi-gcc $(arm-none-eabi-gcc -dumpversion), -Os, Thumb-2) protocol core:"
(cd "$out" && arm-none-eabi-size -t "${core[@]/%/.o}")
echo "linked into one object: $(arm-none-eabi-size "$out/kd3core.o" | awk 'NR == 2 {print $1 " bytes of code and constants (text), " $2 " of data, " $3 " of bss"}')"
echo "external symbols: $(grep -c '^mbedtls_' <<<"$undefined") from Mbed TLS; no malloc, no stdio"
