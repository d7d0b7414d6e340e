# reconfd %post, as %systemd_post reconfd.service expands: on first install ($1 = 1) apply the
# preset, which enables reconfd.service (50-reconfd.preset). It is never started here: the
# operator points /etc/reconfd/reconfd.toml at etcd first (docs/install.md).
if [ "$1" -eq 1 ]; then
    systemctl --no-reload preset reconfd.service >/dev/null 2>&1 || :
fi
# Invoked as `confd`, reconfd takes confd's command line (docs/migrating-from-confd.md).
# cargo-generate-rpm 0.21.1 cannot put a symlink in the .rpm, so %post makes it.
mkdir -p /usr/lib/reconfd && ln -sfn /usr/bin/reconfd /usr/lib/reconfd/confd
