# The reconfd system user (/usr/lib/sysusers.d/reconfd.conf), for the drop-in that runs the
# daemon without root; what %sysusers_create_compat does. Idempotent, so on upgrade too.
if command -v systemd-sysusers >/dev/null 2>&1; then
    systemd-sysusers reconfd.conf || :
elif ! getent passwd reconfd >/dev/null; then
    useradd -r -M -d / -s /sbin/nologin -c "reconfd daemon (renders configuration files from etcd)" reconfd || :
fi
# reconfd %post, as %systemd_post reconfd.service expands: on first install ($1 = 1) apply the
# preset, which enables reconfd.service (50-reconfd.preset). It is never started here: the
# operator points /etc/reconfd/reconfd.toml at etcd first (docs/install.md).
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset reconfd.service >/dev/null 2>&1 || :
fi
# Invoked as `confd`, reconfd takes confd's command line (docs/migrating-from-confd.md).
# cargo-generate-rpm 0.21.1 cannot put a symlink in the .rpm, so %post makes it.
mkdir -p /usr/lib/reconfd && ln -sfn /usr/bin/reconfd /usr/lib/reconfd/confd
