#!/usr/bin/env bash
# The vectors in docs/PROTOCOL.md must be exactly what the code produces.
# usage: check_doc.sh GEN_VECTORS PROTOCOL_MD
set -euo pipefail
gen=$1 doc=$2
expected=$(mktemp) actual=$(mktemp)
trap 'rm -f "$expected" "$actual"' EXIT
"$gen" > "$actual"
sed -n '/^<!-- vectors:begin -->$/,/^<!-- vectors:end -->$/p' "$doc" | sed '1d;$d' > "$expected"
if [ ! -s "$expected" ]; then
	echo "check_doc: no vectors block in $doc" >&2
	exit 1
fi
if ! diff -u "$expected" "$actual"; then
	echo "check_doc: docs/PROTOCOL.md vectors differ from the code (see diff above)" >&2
	exit 1
fi
echo "check_doc: $(grep -c ' = \|bytes)' "$actual") vector lines match docs/PROTOCOL.md"
