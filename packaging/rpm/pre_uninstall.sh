# skupperd %preun ($1: 0 on erase, 1 on upgrade): %systemd_preun. Routers
# in containers or skupper-router@ units keep running.
if [ "$1" -eq 0 ] && [ -d /run/systemd/system ]; then
    systemctl --no-reload disable --now skupperd.service >/dev/null 2>&1 || :
fi
