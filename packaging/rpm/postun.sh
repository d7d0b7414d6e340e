# reconfd %postun, as %systemd_postun_with_restart expands: reload the unit files; on upgrade
# ($1 >= 1) try-restart reconfd.service and its instances, which restarts only those running.
systemctl daemon-reload >/dev/null 2>&1 || :
if [ "$1" -ge 1 ]; then
    systemctl try-restart reconfd.service 'reconfd@*.service' >/dev/null 2>&1 || :
fi
# The package cannot own its directories (cargo-generate-rpm 0.21.1 fails on `dir = true`
# assets), so rpm leaves them behind: remove them on erase, but only when empty, so the
# operator's own files (and the directories holding them) stay.
if [ "$1" -eq 0 ]; then
    rm -f /usr/lib/reconfd/confd
    rmdir /usr/lib/reconfd 2>/dev/null || :
    for d in /etc/reconfd/conf.d /etc/reconfd/templates /etc/reconfd /usr/share/doc/reconfd; do
        rmdir "$d" 2>/dev/null || :
    done
fi
