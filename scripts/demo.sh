#!/usr/bin/env bash
# kd3 demo: a throwaway realm on loopback. Creates a database with two principals
# (alice, bob) and their key files, starts `kdc serve` and `responder`, runs
# `initiator` with a short scripted conversation in both directions, shows messages
# 1-4 as the responder saw them, and stops everything it started.
# usage: scripts/demo.sh [BUILD_DIR]     (default: build)
set -euo pipefail

build=$(cd "${1:-build}" && pwd)
kdc=$build/kdc/kdc responder=$build/responder/responder initiator=$build/initiator/initiator
realm=$(mktemp -d /tmp/kd3-demo.XXXXXX)
pids=()
cleanup() {
	for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$realm"
}
trap cleanup EXIT

# Two free loopback ports (the KDC needs its port free for both UDP and TCP).
read -r kdc_port resp_port < <(/usr/bin/python3 - <<'PY'
import socket
ports = []
while len(ports) < 2:
    t = socket.socket(); t.bind(("127.0.0.1", 0)); p = t.getsockname()[1]
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        u.bind(("127.0.0.1", p)); ports.append(p)
    except OSError:
        pass
    t.close(); u.close()
print(*ports)
PY
)

wait_for() { # file pattern: wait up to 10 s for a line
	for _ in $(seq 100); do grep -q "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done
	echo "demo: timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; exit 1
}

if [ -t 1 ]; then bold=$'\033[1m' plain=$'\033[0m'; else bold="" plain=""; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }

step "a throwaway realm in $realm"
"$kdc" init --db "$realm/kd3.db"
"$kdc" add alice --db "$realm/kd3.db" --keyfile "$realm/alice.key"
"$kdc" add bob --db "$realm/kd3.db" --keyfile "$realm/bob.key"
"$kdc" list --db "$realm/kd3.db"

step "kdc serve on 127.0.0.1:$kdc_port (UDP and TCP)"
"$kdc" serve --db "$realm/kd3.db" --listen "127.0.0.1:$kdc_port" 2>"$realm/kdc.log" &
pids+=($!)
wait_for "$realm/kdc.log" "serving on"
cat "$realm/kdc.log"

step "responder bob on 127.0.0.1:$resp_port, replying to each line (--exec)"
cat >"$realm/bob-replies.sh" <<'BOT'
#!/bin/sh
# One process per session: the decrypted lines arrive on stdin, replies go out on stdout.
echo "hello $KD3_PEER, this is bob (session $KD3_SESSION)"
while IFS= read -r line; do
	echo "bob heard: $line"
done
BOT
chmod 700 "$realm/bob-replies.sh"
"$responder" --listen "127.0.0.1:$resp_port" --kdc "127.0.0.1:$kdc_port" \
	--keyfile "$realm/bob.key" --exec "$realm/bob-replies.sh" --trace 2>"$realm/responder.log" &
pids+=($!)
wait_for "$realm/responder.log" "listening on"

step "initiator alice -> bob: three lines in, bob's replies out"
printf '%s\n' "hi bob, alice here" "the key came from the KDC" "bye" |
	"$initiator" --connect "127.0.0.1:$resp_port" --keyfile "$realm/alice.key" --peer bob \
		>"$realm/alice.out" 2>"$realm/alice.err"
cat "$realm/alice.err"
echo "alice received:"
sed 's/^/    /' "$realm/alice.out"

step "messages 1-4 and the records, as the responder saw them (--trace)"
wait_for "$realm/responder.log" "closed"
cat "$realm/responder.log"

step "the KDC's log line for the request"
grep -v "serving on" "$realm/kdc.log"

# The demo checks itself: every line came back, through the encrypted session.
expected="hello alice, this is bob (session 1)
bob heard: hi bob, alice here
bob heard: the key came from the KDC
bob heard: bye"
if [ "$(cat "$realm/alice.out")" != "$expected" ]; then
	echo "demo: FAILED: alice did not receive the expected replies" >&2
	exit 1
fi
for m in "M1 " "M2 " "M3 " "M4 " "FINISHED" "CLOSE"; do
	grep -q -- "$m" "$realm/responder.log" || { echo "demo: FAILED: no $m in the trace" >&2; exit 1; }
done
step "demo OK: M1-M4 exchanged, session key confirmed both ways, 4 lines each way encrypted"
