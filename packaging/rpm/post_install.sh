# skupperd %post ($1: 1 on install, 2 on upgrade): what %sysusers_create,
# %tmpfiles_create and %systemd_post / %systemd_user_post would do. The
# preset leaves skupperd disabled; it is never started here.
systemd-sysusers skupperd.conf >/dev/null 2>&1 || :
systemd-tmpfiles --create skupperd.conf >/dev/null 2>&1 || :
if [ "$1" -eq 1 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload preset skupperd.service >/dev/null 2>&1 || :
    systemctl --no-reload preset --global skupperd.service >/dev/null 2>&1 || :
fi
if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
