# skupperd %postun ($1: 0 on erase, 1 on upgrade):
# %systemd_postun_with_restart. /var/lib/skupper (the sites) is kept.
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
    if [ "$1" -ge 1 ]; then
        systemctl try-restart skupperd.service >/dev/null 2>&1 || :
    fi
fi
