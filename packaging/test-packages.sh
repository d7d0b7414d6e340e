#!/usr/bin/env bash
# Builds the .deb and the .rpm (packaging/build.sh) and tests them on this Debian machine:
#   1. both packages hold the same files with the same modes and the same conffiles;
#   2. the maintainer scripts and rpm scriptlets do what Debian's and Fedora's conventions ask
#      (run against stub systemctl/deb-systemd-* commands, so no systemd is needed);
#   3. the .rpm unpacks into a scratch root (rpm --root);
#   4. the .deb installs with dpkg -i: reconfd --version; a fresh install acts on nothing (no
#      resource loaded, /etc/nginx untouched) and creates the reconfd user; the README's first
#      steps (write a resource, check, once --noop against etcd); man -w, the unit enabled; an edited conffile survives an upgrade to a higher
#      version; dpkg -r, then dpkg -P, leave none of the package's files behind.
# Needs cargo-deb, cargo-generate-rpm and rpm (.ci/install-deps installs what is missing), and
# root or sudo for dpkg and rpm --root. It installs and purges the reconfd package, so it
# refuses to run where reconfd is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
start=$SECONDS

fail() {
    echo "FAIL: $*" >&2
    exit 1
}
step() { echo "== $*"; }
# skip WHAT: a prerequisite of one check is missing. Under CI=true (.ci/run) that is a failure,
# since .ci/install-deps provides every prerequisite; elsewhere the run goes on and says so.
skip() {
    [ "${CI:-}" != true ] || fail "prerequisite missing under CI: $*"
    echo "SKIPPED: $*"
}

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
status=$(dpkg-query -W -f='${db:Status-Status}' reconfd 2>/dev/null || true)
case "$status" in
"" | not-installed) ;;
*) fail "the reconfd package is on this machine ($status); this test installs and purges it: dpkg -P reconfd first" ;;
esac

tmp=$(mktemp -d)
installed=no
cleanup() {
    if [ "$installed" = yes ]; then
        $sudo dpkg -P reconfd >/dev/null 2>&1 || true
    fi
    $sudo rm -rf "$tmp"
}
trap cleanup EXIT

step "build both packages"
packaging/build.sh >"$tmp/build.log" 2>&1 || {
    cat "$tmp/build.log" >&2
    fail "packaging/build.sh"
}
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n1)
deb=target/debian/reconfd_${version}-1_$(dpkg --print-architecture).deb
rpm=target/generate-rpm/reconfd-${version}-1.$(uname -m).rpm
[ -f "$deb" ] || fail "$deb was not built"
[ -f "$rpm" ] || fail "$rpm was not built"
echo "$deb ($(du -k "$deb" | cut -f1) KiB), $rpm ($(du -k "$rpm" | cut -f1) KiB)"

step "dependencies: the .deb depends on libc only"
depends=$(dpkg-deb -f "$deb" Depends)
[[ "$depends" =~ ^libc6(\ \(.*\))?$ ]] || fail "Depends: $depends"
echo "Depends: $depends"

step "the .deb names the maintainer from Cargo.toml's authors"
maintainer=$(sed -n 's/^authors = \["\(.*\)"\]$/\1/p' Cargo.toml)
[ "$(dpkg-deb -f "$deb" Maintainer)" = "$maintainer" ] || fail ".deb Maintainer: $(dpkg-deb -f "$deb" Maintainer), not $maintainer"
# cargo-generate-rpm 0.21.1 sets no Packager (not even with --set-metadata), so only the .deb.
echo "Maintainer: $maintainer"

step "the .deb and the .rpm hold the same files, modes and conffiles"
# Regular files as "perms path". The .deb gzips man pages and adds a copyright file; Debian's zsh
# reads vendor-completions where Fedora's reads site-functions.
dpkg-deb -c "$deb" | awk '$1 ~ /^-/ { print $1, substr($6, 2) }' |
    sed -E 's|^(.* /usr/share/man/.*)\.gz$|\1|; s|/usr/share/zsh/vendor-completions/|/usr/share/zsh/site-functions/|' |
    grep -v ' /usr/share/doc/reconfd/copyright$' | sort >"$tmp/deb.files"
rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' "$rpm" 2>/dev/null | grep '^-' | sort >"$tmp/rpm.files"
diff -u "$tmp/deb.files" "$tmp/rpm.files" || fail "file lists differ (- .deb, + .rpm); see Cargo.toml"
dpkg-deb --info "$deb" conffiles | sort >"$tmp/deb.conffiles"
rpm -qp --configfiles "$rpm" 2>/dev/null | sort >"$tmp/rpm.conffiles"
diff -u "$tmp/deb.conffiles" "$tmp/rpm.conffiles" || fail "conffiles differ (- .deb, + .rpm)"
for f in /etc/reconfd/reconfd.toml /etc/reconfd/conf.d/nginx.toml.example /etc/reconfd/templates/nginx.tera; do
    grep -qx "$f" "$tmp/deb.conffiles" || fail "$f is not a conffile"
done
# %config(noreplace): an edited file is kept on upgrade, the new one lands beside it as .rpmnew.
rpm -qp --qf '[%{FILEFLAGS:fflags} %{FILENAMES}\n]' "$rpm" 2>/dev/null | awk '$2 ~ /^\/etc\// && $1 !~ /n/ { bad = 1; print } END { exit bad }' ||
    fail "an /etc file of the .rpm is not %config(noreplace)"
rpm -qp --list "$rpm" 2>/dev/null | grep -x /usr/bin/reconfd >/dev/null || fail "rpm --list: no /usr/bin/reconfd"
wc -l <"$tmp/deb.files" | xargs printf '%s files, '
wc -l <"$tmp/deb.conffiles" | xargs printf '%s conffiles\n'

step "maintainer scripts and scriptlets follow the conventions (stub systemctl, deb-systemd-*)"
mkdir -p "$tmp/stubs"
# ln, mkdir, rm and rmdir too: the rpm scriptlets manage /usr/lib/reconfd/confd, and must not
# touch this machine's files when run here.
for cmd in systemctl deb-systemd-helper deb-systemd-invoke ln mkdir rm rmdir; do
    printf '#!/bin/sh\necho "%s $*" >>"$STUB_LOG"\nexit 0\n' "$cmd" >"$tmp/stubs/$cmd"
    chmod 755 "$tmp/stubs/$cmd"
done
# The user-creating commands too: the scripts' calls are checked, this machine's users untouched.
for cmd in systemd-sysusers adduser useradd; do
    printf '#!/bin/sh\necho "%s $*" >>"$STUB_LOG"\nexit 0\n' "$cmd" >"$tmp/stubs/$cmd"
    chmod 755 "$tmp/stubs/$cmd"
done
export STUB_LOG="$tmp/calls"
# run SCRIPT ARGS...: runs a maintainer script with the stubs first on PATH; prints their calls.
run() {
    : >"$STUB_LOG"
    PATH="$tmp/stubs:$PATH" sh "$@" >/dev/null
    cat "$STUB_LOG"
}
# expect WHAT CALLS [+CALL | -PATTERN]...: +CALL must be among the calls, no call may match -PATTERN.
expect() {
    local what=$1 calls=$2
    shift 2
    for e in "$@"; do
        case "$e" in
        +*) grep -qxF -- "${e#+}" <<<"$calls" || fail "$what: no call '${e#+}'; calls were: ${calls:-none}" ;;
        -*) ! grep -qE -- "${e#-}" <<<"$calls" || fail "$what: unexpected call matching '${e#-}': $calls" ;;
        esac
    done
}
for s in POSTIN PREUN POSTUN; do
    rpm -qp --qf "%{$s}\n" "$rpm" 2>/dev/null >"$tmp/$s.sh"
done
expect "rpm %post, install" "$(run "$tmp/POSTIN.sh" 1)" "+systemctl --no-reload preset reconfd.service" "-start|restart" \
    "+ln -sfn /usr/bin/reconfd /usr/lib/reconfd/confd"
expect "rpm %post, upgrade" "$(run "$tmp/POSTIN.sh" 2)" "-systemctl" "+ln -sfn /usr/bin/reconfd /usr/lib/reconfd/confd"
expect "rpm %post, the reconfd user" "$(run "$tmp/POSTIN.sh" 1)" "+systemd-sysusers reconfd.conf"
expect "rpm %preun, erase" "$(run "$tmp/PREUN.sh" 0)" \
    "+systemctl --no-reload disable --now reconfd.service" "+systemctl stop reconfd@*.service"
expect "rpm %preun, upgrade" "$(run "$tmp/PREUN.sh" 1)" "-."
expect "rpm %postun, upgrade" "$(run "$tmp/POSTUN.sh" 1)" "+systemctl try-restart reconfd.service reconfd@*.service"
expect "rpm %postun, erase" "$(run "$tmp/POSTUN.sh" 0)" "-restart" "+rm -f /usr/lib/reconfd/confd"
echo "rpm scriptlets: install, upgrade, erase OK"
# The .deb's scripts act on units only where systemd runs (/run/systemd/system). Where it does
# not, give them a private /run in a mount namespace that says it does.
dpkg-deb -e "$deb" "$tmp/debian"
if [ -d /run/systemd/system ]; then
    in_systemd() { "$@"; }
elif $sudo unshare -m true 2>/dev/null; then
    in_systemd() {
        $sudo unshare -m sh -c 'mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/system && exec "$@"' sh "$@"
    }
else
    in_systemd() { return 99; }
fi
if in_systemd true; then
    deb_run() {
        : >"$STUB_LOG"
        in_systemd env STUB_LOG="$STUB_LOG" PATH="$tmp/stubs:$PATH" sh "$@" >/dev/null
        cat "$STUB_LOG"
    }
    expect "deb postinst, install" "$(deb_run "$tmp/debian/postinst" configure "")" \
        "+deb-systemd-helper enable reconfd.service" "-start|restart" "+systemd-sysusers reconfd.conf"
    expect "deb postinst, upgrade" "$(deb_run "$tmp/debian/postinst" configure 0.0.1-1)" \
        "+deb-systemd-invoke try-restart reconfd.service" "+deb-systemd-invoke try-restart reconfd@*.service" \
        "-invoke (start|restart|stop)"
    expect "deb prerm, upgrade" "$(deb_run "$tmp/debian/prerm" upgrade 9.9.9-1)" "-stop"
    expect "deb prerm, remove" "$(deb_run "$tmp/debian/prerm" remove)" \
        "+deb-systemd-invoke stop reconfd.service" "+deb-systemd-invoke stop reconfd@*.service"
    expect "deb postrm, purge" "$(deb_run "$tmp/debian/postrm" purge)" "+deb-systemd-helper purge reconfd.service"
    echo "deb maintainer scripts: install, upgrade, remove, purge OK"
else
    skip "no systemd and no mount namespace here; the .deb's unit handling is checked by the install below only"
fi

step "the .rpm unpacks into a scratch root (rpm -i --nodeps --root)"
root="$tmp/rpmroot"
mkdir -p "$root"
$sudo rpm --root "$root" --initdb
# --noscripts: the scratch root has no shell to run the scriptlets in (they are checked above).
$sudo rpm --root "$root" -i --nodeps --noscripts "$rpm" 2>"$tmp/rpm.log" || {
    cat "$tmp/rpm.log" >&2
    fail "rpm -i --root"
}
while read -r _ path; do
    [ -f "$root$path" ] || fail "rpm --root: $path not installed"
done <"$tmp/rpm.files"
"$root/usr/bin/reconfd" --version >/dev/null || fail "the binary from the .rpm does not run"
$sudo rpm --root "$root" -qc reconfd | sort | diff -u "$tmp/rpm.conffiles" - || fail "rpm -qc after install"
$sudo rpm --root "$root" -V --nodeps --noscripts reconfd || fail "rpm -V: the unpacked files differ from the package"
$sudo rpm --root "$root" -e --nodeps --noscripts reconfd 2>>"$tmp/rpm.log" || fail "rpm -e --root"
[ -z "$($sudo find "$root" -type f -path '*reconfd*' ! -path "$root/var/lib/rpm*")" ] || fail "rpm -e left files"

step "dpkg -i installs the .deb"
# Every path named *reconfd* under /etc, /usr and /var: what dpkg -P must restore.
reconfd_paths() {
    { find /etc /usr /var -name '*reconfd*' 2>/dev/null || true; } | sort
}
before=$(reconfd_paths)
# /etc/nginx's files and their checksums: a fresh install must not change them.
nginx_state() {
    { find /etc/nginx -type f -exec sha256sum {} + 2>/dev/null || true; } | sort
}
nginx_before=$(nginx_state)
# The README's first steps on the installed package: write a resource, check, once --noop
# against a real etcd on loopback. The resource writes into a scratch directory and reloads
# nothing; it is removed again so that purging leaves nothing behind.
operator_steps() {
    command -v etcd >/dev/null || {
        [ "${CI:-}" = true ] && fail "etcd is not installed (.ci/install-deps)"
        echo "note: no etcd here; the README's once --noop step is skipped"
        return 0
    }
    local port peer ep dest=$tmp/op/out
    free_port() {
        local p
        while :; do
            p=$((20000 + RANDOM % 20000))
            (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
        done
    }
    port=$(free_port)
    peer=$(free_port)
    ep="http://127.0.0.1:$port"
    mkdir -p "$tmp/op/out"
    etcd --name op --data-dir "$tmp/op/etcd" --listen-client-urls "$ep" --advertise-client-urls "$ep" \
        --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
        --initial-cluster "op=http://127.0.0.1:$peer" >"$tmp/op/etcd.log" 2>&1 &
    local etcd_pid=$!
    local ok=no
    for _ in $(seq 100); do
        ETCDCTL_API=3 etcdctl --endpoints "$ep" put /services/apache/a 10.0.0.1:80 >/dev/null 2>&1 && { ok=yes; break; }
        sleep 0.1
    done
    [ "$ok" = yes ] || { kill "$etcd_pid"; fail "etcd did not start: $(tail -5 "$tmp/op/etcd.log")"; }
    sed -e "s|^dest = .*|dest = \"$dest/nginx.conf\"|" -e '/^reload_cmd/d' -e '/^check_cmd/d' \
        /etc/reconfd/conf.d/nginx.toml.example | $sudo tee /etc/reconfd/conf.d/nginx.toml >/dev/null
    local rc=0 out
    out=$(reconfd check 2>&1) || rc=$?
    grep -q "^1 resource(s) OK" <<<"$out" || rc=1
    if [ $rc -eq 0 ]; then
        out=$(reconfd once --noop --endpoint "$ep" 2>&1) || rc=$?
        grep -q "server 10.0.0.1:80;" <<<"$out" || rc=1
        [ ! -e "$dest/nginx.conf" ] || rc=1
    fi
    kill "$etcd_pid" 2>/dev/null || true
    wait "$etcd_pid" 2>/dev/null || true
    $sudo rm -f /etc/reconfd/conf.d/nginx.toml
    [ $rc -eq 0 ] || fail "the README's steps on the installed package: $out"
    echo "README steps: resource written, check OK, once --noop showed the diff and wrote nothing"
}
installed=yes
$sudo dpkg -i --path-include='/usr/share/man/*' "$deb" </dev/null >"$tmp/dpkg.log" 2>&1 || {
    cat "$tmp/dpkg.log" >&2
    fail "dpkg -i"
}
[ "$(dpkg-query -W -f='${db:Status-Status}' reconfd)" = installed ] || fail "not installed"
[ "$(reconfd --version)" = "reconfd $version" ] || fail "reconfd --version: $(reconfd --version)"
echo "$(command -v reconfd): $(reconfd --version)"
# The confd name: a symlink owned by the package, which runs confd's command line.
[ "$(readlink -f /usr/lib/reconfd/confd)" = "$(readlink -f /usr/bin/reconfd)" ] ||
    fail "/usr/lib/reconfd/confd is not a link to reconfd"
dpkg -S /usr/lib/reconfd/confd >/dev/null || fail "/usr/lib/reconfd/confd is not owned by the package"
/usr/lib/reconfd/confd -version | grep -q confd-compatible || fail "confd -version: $(/usr/lib/reconfd/confd -version)"
# A fresh install acts on nothing: the example resource is conf.d/nginx.toml.example, which is
# not loaded, and check says there is no resource.
out=$(reconfd check 2>&1) || fail "reconfd check on the fresh install: $out"
grep -q "^no resources in /etc/reconfd/conf.d" <<<"$out" || fail "reconfd check on the fresh install: $out"
[ -z "$(find /etc/reconfd/conf.d -name '*.toml')" ] || fail "the package installs a resource: $(find /etc/reconfd/conf.d -name '*.toml')"
if [ -d /etc/nginx ]; then
    [ "$(nginx_state)" = "$nginx_before" ] || fail "installing the package changed /etc/nginx"
fi
getent passwd reconfd >/dev/null || fail "no reconfd user after install (sysusers.d)"
echo "fresh install: no resource loaded, /etc/nginx untouched, user reconfd present"
operator_steps
# (dpkg -i above overrides a path-exclude of man pages, as minimal images set one.)
if command -v man >/dev/null; then
    man -w reconfd || fail "man -w reconfd"
    man -w 5 reconfd.toml || fail "man -w 5 reconfd.toml"
else
    skip "man is not installed (apt-get install man-db); man -w not checked"
fi
# Enabled on first install (deb-systemd-helper), never started (no start call, checked above).
wants=/etc/systemd/system/multi-user.target.wants/reconfd.service
# (deb-systemd-helper links to /lib/systemd/system, the same directory on a merged /usr.)
[ "$(readlink -f "$wants")" = "$(readlink -f /usr/lib/systemd/system/reconfd.service)" ] ||
    fail "reconfd.service is not enabled"
# --man=no: the man pages are checked above, and verify's own check would leave cat pages behind.
if ! command -v systemd-analyze >/dev/null; then
    skip "systemd-analyze is not installed (apt-get install systemd); the units are not verified"
else
    systemd-analyze verify --man=no /usr/lib/systemd/system/reconfd.service || fail "systemd-analyze verify reconfd.service"
    mkdir -p "$tmp/units"
    cp /usr/lib/systemd/system/reconfd@.service "$tmp/units/reconfd@site.service"
    systemd-analyze verify --man=no "$tmp/units/reconfd@site.service" || fail "systemd-analyze verify reconfd@.service"
    echo "systemd-analyze verify: both units OK"
fi
bash -c '. /usr/share/bash-completion/completions/reconfd && complete -p reconfd' >/dev/null ||
    fail "bash completion does not load"

step "an edited conffile survives an upgrade to a higher version"
upgrade="$version-1+pkgtest1"
dpkg --compare-versions "$upgrade" gt "$version-1" || fail "$upgrade is not higher than $version-1"
mkdir -p "$tmp/upgrade"
# cargo deb deletes the other versions of the package from target/debian, wherever -o points:
# keep the one packaging/build.sh made.
cp "$deb" "$tmp/"
cargo deb --locked --no-build --deb-version "$upgrade" -o "$tmp/upgrade/" >"$tmp/build2.log" 2>&1 || {
    cat "$tmp/build2.log" >&2
    fail "cargo deb --deb-version $upgrade"
}
[ -f "$deb" ] || cp "$tmp/${deb##*/}" "$deb"
edit="# edited by the operator ($$)"
echo "$edit" | $sudo tee -a /etc/reconfd/reconfd.toml >/dev/null
# stdin from /dev/null: a conffile prompt would fail here instead of waiting.
$sudo dpkg -i --path-include='/usr/share/man/*' "$tmp/upgrade/"*.deb </dev/null >"$tmp/dpkg.log" 2>&1 || {
    cat "$tmp/dpkg.log" >&2
    fail "dpkg -i (upgrade)"
}
[ "$(dpkg-query -W -f='${Version}' reconfd)" = "$upgrade" ] || fail "the upgrade did not install"
grep -qxF "$edit" /etc/reconfd/reconfd.toml || fail "the upgrade lost the edit of /etc/reconfd/reconfd.toml"
[ -z "$(find /etc/reconfd -name '*.dpkg-*')" ] || fail "the upgrade left $(find /etc/reconfd -name '*.dpkg-*')"
reconfd check >/dev/null 2>&1 || [ ! -d /etc/nginx ] || fail "reconfd check after the upgrade"
[ -L "$wants" ] || fail "the upgrade disabled reconfd.service"
echo "edit kept, $(dpkg-query -W -f='${Version}' reconfd) installed"

step "dpkg -r keeps only the conffiles; dpkg -P leaves nothing"
$sudo dpkg -r reconfd >/dev/null 2>&1 || fail "dpkg -r"
[ ! -e /usr/lib/reconfd/confd ] && [ ! -L /usr/lib/reconfd/confd ] || fail "dpkg -r left /usr/lib/reconfd/confd"
[ "$(dpkg-query -W -f='${db:Status-Status}' reconfd)" = config-files ] || fail "not in config-files state after dpkg -r"
while read -r _ path; do
    case "$path" in /etc/*) continue ;; esac
    [ ! -e "$path" ] && [ ! -e "$path.gz" ] || fail "dpkg -r left $path"
done <"$tmp/deb.files"
while read -r path; do
    [ -f "$path" ] || fail "dpkg -r removed the conffile $path"
done <"$tmp/deb.conffiles"
$sudo dpkg -P reconfd >/dev/null 2>&1 || fail "dpkg -P"
installed=no
after=$(reconfd_paths)
[ "$before" = "$after" ] || fail "dpkg -P left: $(comm -13 <(echo "$before") <(echo "$after"))"
[ ! -e /etc/reconfd ] || fail "dpkg -P left /etc/reconfd"
[ ! -L "$wants" ] || fail "dpkg -P left $wants"
echo "nothing left"

echo "packages OK ($((SECONDS - start)) s)"
