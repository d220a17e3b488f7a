#!/bin/sh
# Verifies the systemd unit files under systemd/ with `systemd-analyze
# verify`, working around its quirks (platform.md 7):
# - it fails when an ExecStart= binary does not exist, so the binaries are
#   rewritten to /bin/true in a temporary copy;
# - it exits 0 on unknown keys and only prints a warning, so ANY output is
#   a failure;
# - `--user` needs XDG_RUNTIME_DIR;
# - a template is checked through an instance next to it.
# The user variants (*.user.service) are installed under the system names,
# so they are copied under those names into a separate user directory.
set -eu

root=$(cd "$(dirname "$0")/.." && pwd)
units="$root/systemd"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/system" "$tmp/user" "$tmp/runtime"
chmod 0700 "$tmp/runtime"

if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "verify-units: systemd-analyze not found (apt-get install systemd)" >&2
    exit 1
fi

copy() { # source, destination
    sed -e 's#/usr/bin/skupperd#/bin/true#g' -e 's#/usr/sbin/skrouterd#/bin/true#g' "$1" >"$2"
}

copy "$units/skupperd.service" "$tmp/system/skupperd.service"
copy "$units/skupper-router@.service" "$tmp/system/skupper-router@.service"
copy "$units/skupperd.user.service" "$tmp/user/skupperd.service"
copy "$units/skupper-router@.user.service" "$tmp/user/skupper-router@.service"

failed=0
check() { # label, command...
    label=$1
    shift
    out=$("$@" 2>&1) && status=0 || status=$?
    if [ "$status" -ne 0 ] || [ -n "$out" ]; then
        echo "verify-units: $label failed (exit $status):"
        printf '%s\n' "$out" | sed 's/^/  /'
        failed=1
    else
        echo "verify-units: $label ok"
    fi
}

cd "$tmp"
check "system skupperd.service" \
    systemd-analyze verify "$tmp/system/skupperd.service"
check "system skupper-router@.service" \
    systemd-analyze verify "$tmp/system/skupper-router@test.service"
check "user skupperd.service" \
    env XDG_RUNTIME_DIR="$tmp/runtime" systemd-analyze --user verify "$tmp/user/skupperd.service"
check "user skupper-router@.service" \
    env XDG_RUNTIME_DIR="$tmp/runtime" systemd-analyze --user verify "$tmp/user/skupper-router@test.service"

# The system unit's exposure (README): at most 2.5.
exposure=$(systemd-analyze security --offline=yes "$tmp/system/skupperd.service" 2>&1 \
    | sed -n 's/.*Overall exposure level for skupperd.service: \([0-9.]*\).*/\1/p')
if [ -z "$exposure" ] || ! awk -v e="$exposure" 'BEGIN { exit !(e <= 2.5) }'; then
    echo "verify-units: systemd-analyze security skupperd.service: exposure '${exposure}' is above 2.5"
    failed=1
else
    echo "verify-units: systemd-analyze security skupperd.service: exposure $exposure (<= 2.5) ok"
fi

exit "$failed"
