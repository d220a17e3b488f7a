#!/usr/bin/env bash
# Builds the .deb with cargo-deb, installs it with dpkg -i, checks every
# file with its mode, the conffile, the skupper user and the data home,
# runs /usr/bin/skupperd version and `skupperd check` on the bundled sample
# copied into a data home, then purges the package and checks that only
# what policy keeps is left (/var/lib/skupper: the sites; the skupper
# user). Run as root on a Debian machine without skupperd installed; what
# the check itself created beyond the package (the data home, the user) is
# removed at the end when it did not exist before.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "package-check: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || fail "must run as root (dpkg -i)"
if dpkg-query -W -f='${Status}' skupperd 2>/dev/null | grep -q 'installed'; then
    fail "skupperd is already installed here; this check would purge it"
fi
if ! command -v cargo-deb >/dev/null 2>&1; then
    cargo install cargo-deb --locked --no-default-features
fi

tmp=$(mktemp -d)
had_home=no; [ -e /var/lib/skupper ] && had_home=yes
had_user=no; getent passwd skupper >/dev/null && had_user=yes
cleanup() {
    set +e
    dpkg --purge skupperd >/dev/null 2>&1
    if [ "$had_home" = no ]; then rm -rf /var/lib/skupper; fi
    if [ "$had_user" = no ] && getent passwd skupper >/dev/null; then
        userdel skupper 2>/dev/null; groupdel skupper 2>/dev/null
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "== cargo deb"
cargo deb --strip --output "$tmp/skupperd.deb" >/dev/null
dpkg-deb --info "$tmp/skupperd.deb" | sed -n '/Package:/,$p'

echo "== dpkg -i"
dpkg -i "$tmp/skupperd.deb"

# path, type (f/d), mode
expected="\
/usr/bin/skupperd f 755
/usr/lib/systemd/system/skupperd.service f 644
/usr/lib/systemd/system/skupper-router@.service f 644
/usr/lib/systemd/user/skupperd.service f 644
/usr/lib/systemd/user/skupper-router@.service f 644
/usr/lib/sysusers.d/skupperd.conf f 644
/usr/lib/tmpfiles.d/skupperd.conf f 644
/etc/skupperd/config.toml f 644
/usr/share/doc/skupperd/README.md f 644
/usr/share/doc/skupperd/copyright f 644
/usr/share/doc/skupperd/examples/hello-world-west/input/resources/Site-west.yaml f 644
/usr/share/doc/skupperd/examples/hello-world-west/input/resources/Listener-backend.yaml f 644
/usr/share/doc/skupperd/examples/hello-world-west/internal/platform.yaml f 644
/var/lib/skupper d 711
/var/lib/skupper/namespaces d 711"
while read -r path type mode; do
    case "$type" in
        f) [ -f "$path" ] || fail "$path is missing" ;;
        d) [ -d "$path" ] || fail "directory $path is missing" ;;
    esac
    got=$(stat -c '%a %U:%G' "$path")
    [ "$got" = "$mode root:root" ] || fail "$path is $got, expected $mode root:root"
    echo "ok   $mode root:root $path"
done <<<"$expected"
# Nothing else is installed.
listed=$(dpkg -L skupperd | while read -r p; do [ -f "$p" ] && echo "$p"; done | sort)
want=$(echo "$expected" | awk '$2 == "f" { print $1 }' | sort)
[ "$listed" = "$want" ] || fail "installed files differ: $(diff <(echo "$want") <(echo "$listed") || true)"
dpkg-query -W -f='${Conffiles}\n' skupperd | grep -q '^ /etc/skupperd/config.toml ' \
    || fail "/etc/skupperd/config.toml is not a conffile"
echo "ok   conffile /etc/skupperd/config.toml"
getent passwd skupper >/dev/null || fail "the skupper user was not created"
echo "ok   user skupper"
dpkg-query -W -f='${Recommends}\n' skupperd | grep -q 'skupper-router, podman' \
    || fail "Recommends is not skupper-router, podman"
echo "ok   Recommends: $(dpkg-query -W -f='${Recommends}' skupperd)"

echo "== /usr/bin/skupperd version"
/usr/bin/skupperd version

echo "== skupperd check on the bundled sample, copied into a data home"
mkdir -p "$tmp/home/namespaces"
cp -r /usr/share/doc/skupperd/examples/hello-world-west "$tmp/home/namespaces/west"
/usr/bin/skupperd check "$tmp/home/namespaces/west"

echo "== dpkg --purge"
dpkg --purge skupperd
for path in $(echo "$expected" | awk '$2 == "f" { print $1 }') /etc/skupperd; do
    [ ! -e "$path" ] || fail "$path is left after purge"
done
[ -d /var/lib/skupper ] || fail "/var/lib/skupper (user data) was removed by purge"
echo "ok   purged: no file of the package is left; /var/lib/skupper and the skupper user are kept"
echo "package-check: ok"
