#!/usr/bin/env bash
# Builds reconfd's OCI image from scratch with buildah (no registry, no base image):
#
#   target/oci/reconfd-<version>.tar    OCI archive, named localhost/reconfd:<version>
#
# What is in it (docs/coreos.md, "The container image"):
#   /usr/bin/reconfd   the static binary (packaging/build-static.sh; BIN=path uses another)
#   /bin/busybox       Debian's busybox-static, with sh, kill, cat and a few other applets
#                      linked to it: check_cmd and reload_cmd run through /bin/sh -c
#   /etc/reconfd/      empty: the configuration comes from a mount
#   /tmp               mode 1777
# No CA certificates: reconfd trusts only the CA file its config names, never a system store.
# ENTRYPOINT ["/usr/bin/reconfd", "run"], user 65534:65534 (nobody) unless the container is run
# with --user, OCI labels for the version, source, licenses and revision.
#
# Needs buildah (root here; .ci/install-deps installs it) and busybox-static. Prints the
# archive's path on stdout. Loading it into podman: `podman load -i target/oci/reconfd-*.tar`.
set -euo pipefail
cd "$(dirname "$0")/.."

field() { sed -n "0,/^$1 *= *\"\\(.*\\)\"/s//\\1/p" Cargo.toml; }
version=$(field version)
license=$(field license)
description=$(field description)
[ -n "$version" ] && [ -n "$license" ] || {
    echo "build-image: cannot read version and license from Cargo.toml" >&2
    exit 1
}
revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)
# Where the source is: IMAGE_SOURCE, else Cargo.toml's `repository`, else the commit.
source=${IMAGE_SOURCE:-$(field repository)}
if [ -z "$source" ]; then
    echo "build-image: Cargo.toml has no repository and IMAGE_SOURCE is unset; org.opencontainers.image.source names the commit" >&2
    source="reconfd commit $revision"
fi

bin=${BIN:-$(packaging/build-static.sh)}
busybox=${BUSYBOX:-/bin/busybox}
for exe in "$bin" "$busybox"; do
    [ -x "$exe" ] || {
        echo "build-image: $exe is missing (busybox: apt-get install busybox-static)" >&2
        exit 1
    }
    # A scratch image has no shared libraries: anything dynamic would not start.
    if ldd "$exe" 2>&1 | grep -q '=>'; then
        echo "build-image: $exe is linked dynamically; the image needs static executables" >&2
        exit 1
    fi
done

work=$(mktemp -d)
ctr=""
cleanup() {
    [ -z "$ctr" ] || buildah rm "$ctr" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

root=$work/root
install -D -m 0755 "$bin" "$root/usr/bin/reconfd"
install -D -m 0755 "$busybox" "$root/bin/busybox"
# What reload and check commands in a container usually need: a shell, kill and cat for a
# PID file, test/[ and echo for scripts.
for applet in sh kill cat test [ echo printf sleep grep ls; do
    ln -s busybox "$root/bin/$applet"
done
install -d -m 0755 "$root/etc/reconfd"
install -d -m 1777 "$root/tmp"

ctr=$(buildah from scratch)
buildah copy --quiet "$ctr" "$root" / >/dev/null
buildah config \
    --entrypoint '["/usr/bin/reconfd", "run"]' \
    --cmd '' \
    --user 65534:65534 \
    --workingdir / \
    --env PATH=/usr/bin:/bin \
    --stop-signal SIGTERM \
    --label "org.opencontainers.image.title=reconfd" \
    --label "org.opencontainers.image.description=$description" \
    --label "org.opencontainers.image.version=$version" \
    --label "org.opencontainers.image.licenses=$license AND GPL-2.0-only" \
    --label "org.opencontainers.image.source=$source" \
    --label "org.opencontainers.image.revision=$revision" \
    "$ctr"
mkdir -p target/oci
archive=target/oci/reconfd-$version.tar
rm -f "$archive"
buildah commit --quiet --format oci --rm "$ctr" "oci-archive:$archive:localhost/reconfd:$version" >/dev/null
ctr=""
echo "$archive"
