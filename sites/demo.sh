#!/usr/bin/env bash
# Renders the bundled Hello World West site into a fresh data home under
# target/demo (never into the tracked sample), then shows the results.
set -euo pipefail
cd "$(dirname "$0")/.."
home="target/demo"
rm -rf "$home"
mkdir -p "$home/namespaces"
cp -r sites/hello-world-west "$home/namespaces/west"
cargo build -q
./target/debug/skupperd render "$home/namespaces/west"
echo
echo "== $home/namespaces/west/runtime/router/skrouterd.json"
cat "$home/namespaces/west/runtime/router/skrouterd.json"
echo
./target/debug/skupperd status --data-home "$home"
