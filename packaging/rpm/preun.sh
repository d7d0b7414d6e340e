# reconfd %preun, as %systemd_preun expands: on erase ($1 = 0), not on upgrade, disable and
# stop reconfd.service, and stop the instances of reconfd@.service.
if [ "$1" -eq 0 ]; then
    systemctl --no-reload disable --now reconfd.service >/dev/null 2>&1 || :
    systemctl stop 'reconfd@*.service' >/dev/null 2>&1 || :
fi
