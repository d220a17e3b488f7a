#!/usr/bin/env bash
# Runs the bundled Hello World West site for real: `skupperd run` on a copy
# of sites/hello-world-west in a fresh data home under target/demo (never
# the tracked sample), plus a local backend and a Connector for it, then
# sends a request through the site's listener (127.0.0.1:8080) and stops
# everything it started.
#
# The router, first found of:
#   1. a real skrouterd: $SKUPPERD_SKROUTERD, else `skrouterd` on PATH
#      (linux platform, skupperd's process runner);
#   2. podman with the router image ($SKUPPER_ROUTER_IMAGE, else skupperd's
#      default) already present: podman platform, through a podman API
#      socket this script serves for the run;
#   3. the router double, a test stand-in built from this repository.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"
target="${CARGO_TARGET_DIR:-$repo/target}"
home="$repo/target/demo"
ns="$home/namespaces/west"
port=8080

pids=()
container=""
cleanup() {
    set +e
    for pid in "${pids[@]}"; do
        kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    done
    if [ -n "$container" ]; then
        podman rm -f -t 10 "$container" >/dev/null 2>&1
    fi
}
trap cleanup EXIT

if ss -ltn "sport = :$port" | grep -q LISTEN; then
    echo "port $port (the sample listener's) is in use; free it and run again" >&2
    exit 1
fi

cargo build -q --bin skupperd
skupperd="$target/debug/skupperd"

rm -rf "$home"
mkdir -p "$home/namespaces" "$home/backend"
cp -r sites/hello-world-west "$ns"

# The backend the listener leads to: a static web server, and a Connector
# with the listener's routing key.
echo "Hello from the backend behind the west site" > "$home/backend/index.html"
backend_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -m http.server --bind 127.0.0.1 --directory "$home/backend" "$backend_port" >"$home/backend.log" 2>&1 &
pids+=($!)
cat > "$ns/input/resources/backend-connector.yaml" <<EOF
apiVersion: skupper.io/v2alpha1
kind: Connector
metadata:
  name: backend
spec:
  routingKey: backend
  host: 127.0.0.1
  port: $backend_port
EOF

# skupperd's default image (config router_image), unless named.
image="${SKUPPER_ROUTER_IMAGE:-quay.io/skupper/skupper-router:3.4.2}"
real="${SKUPPERD_SKROUTERD:-$(command -v skrouterd || true)}"
config="$home/skupperd.toml"
if [ -n "$real" ]; then
    echo "== router: skrouterd at $real (process runner)"
    echo "platform: linux" > "$ns/internal/platform.yaml"
    printf 'router_binary = "%s"\n' "$real" > "$config"
elif command -v podman >/dev/null 2>&1 && podman image exists "$image"; then
    echo "== router: the container image $image (podman runner)"
    echo "platform: podman" > "$ns/internal/platform.yaml"
    podman system service --time=0 "unix://$home/podman.sock" &
    pids+=($!)
    for _ in $(seq 100); do [ -S "$home/podman.sock" ] && break; sleep 0.1; done
    printf 'podman_endpoint = "%s"\nrouter_image = "%s"\nimage_pull = "never"\n' \
        "$home/podman.sock" "$image" > "$config"
    container="west-skupper-router"
else
    cargo build -q -p router-double --bin skrouterd-double
    echo "== router: the ROUTER DOUBLE ($target/debug/skrouterd-double)"
    echo "   This is a test stand-in for skupper-router, not a router: it answers"
    echo "   management and forwards TCP within this one site. For the real router,"
    echo "   install skupper-router (skrouterd on PATH, or SKUPPERD_SKROUTERD=/path),"
    echo "   or podman with its image: podman pull $image"
    echo "platform: linux" > "$ns/internal/platform.yaml"
    printf 'router_binary = "%s"\n' "$target/debug/skrouterd-double" > "$config"
fi
printf 'router_poll_interval_ms = 500\n' >> "$config"

echo "== skupperd run --data-home $home"
"$skupperd" run --data-home "$home" --config "$config" --log-level warn 2>"$home/skupperd.log" &
skupperd_pid=$!
pids=("$skupperd_pid" "${pids[@]}")

record="$ns/runtime/resources/Listener-backend.yaml"
for _ in $(seq 300); do
    grep -q 'status: Ready' "$record" 2>/dev/null && break
    if ! kill -0 "$skupperd_pid" 2>/dev/null; then
        echo "skupperd exited:" >&2
        cat "$home/skupperd.log" >&2
        exit 1
    fi
    sleep 0.2
done
"$skupperd" status --data-home "$home"
echo
echo "== curl http://127.0.0.1:$port/ (through the site's listener)"
if ! curl -sS --max-time 10 "http://127.0.0.1:$port/"; then
    echo "no answer through the listener; skupperd's log:" >&2
    cat "$home/skupperd.log" >&2
    exit 1
fi
echo
echo "== stopping skupperd, its router and the backend"
