#!/usr/bin/env bash
# The Hello World pair on one host, as the README's steps: namespaces
# hello-world-east (link access, Connector `backend` to a local backend on
# 127.0.0.1:9090) and hello-world-west (Listener `backend` on
# 127.0.0.1:8080) under one `skupperd run`, linked with the link file east
# writes; then a request to west's listener is answered by east's backend.
#
# Needs a skupper-router: SKROUTERD=/path/to/skrouterd (default
# /usr/sbin/skrouterd). Uses a fresh data home under target/hello-world;
# nothing is written into the tracked samples.
set -euo pipefail
cd "$(dirname "$0")/.."
skrouterd="${SKROUTERD:-/usr/sbin/skrouterd}"
home="$PWD/target/hello-world"
rm -rf "$home"
mkdir -p "$home/namespaces"
cargo build -q --bin skupperd
skupperd=./target/debug/skupperd
if [ -n "${CARGO_TARGET_DIR:-}" ]; then skupperd="$CARGO_TARGET_DIR/debug/skupperd"; fi

# 1. Both namespaces, and a config naming the router.
cp -r sites/hello-world-east "$home/namespaces/hello-world-east"
cp -r sites/hello-world-west "$home/namespaces/hello-world-west"
printf 'router_binary = "%s"\nlinux_runner = "process"\n' "$skrouterd" >"$home/skupperd.toml"

# 2. East's backend: any TCP server on 127.0.0.1:9090 (here Python's).
mkdir -p "$home/backend" && echo "Hello from east's backend" >"$home/backend/index.html"
python3 -m http.server 9090 --bind 127.0.0.1 --directory "$home/backend" >/dev/null 2>&1 &
backend=$!

# 3. One skupperd for both namespaces.
"$skupperd" run --data-home "$home" --config "$home/skupperd.toml" >"$home/skupperd.log" 2>&1 &
daemon=$!
trap 'kill $daemon $backend 2>/dev/null; wait $daemon 2>/dev/null' EXIT

wait_for() { # <what> <command...>: up to 30 s
    local what=$1; shift
    for _ in $(seq 300); do "$@" >/dev/null 2>&1 && return 0; sleep 0.1; done
    echo "timed out waiting for $what" >&2; tail -20 "$home/skupperd.log" >&2; return 1
}

# 4. East writes a link file per host it can be reached at; give west the
#    one for 127.0.0.1 (both sites are on this host).
link="$home/namespaces/hello-world-east/runtime/links/link-east-127.0.0.1.yaml"
wait_for "east's link file" test -s "$link"
cp "$link" "$home/namespaces/hello-world-west/input/resources/link-east.yaml"

# 5. The link comes up and west's Listener is Ready.
ready() { grep -q '^  status: Ready' "$home/namespaces/$1/runtime/resources/$2.yaml"; }
wait_for "west's Link Ready" ready hello-world-west Link-link-east
wait_for "west's Listener Ready" ready hello-world-west Listener-backend
"$skupperd" status --data-home "$home"

# 6. A request to west's listener, answered by east's backend.
echo "== curl http://127.0.0.1:8080/"
curl -sS --max-time 5 http://127.0.0.1:8080/
