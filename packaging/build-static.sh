#!/usr/bin/env bash
# Builds reconfd as one static executable for hosts that have no matching libraries (Fedora
# CoreOS, Flatcar, a container image built from scratch): glibc linked in with
# `-C target-feature=+crt-static` for x86_64-unknown-linux-gnu, with the release profile.
#
#   target/x86_64-unknown-linux-gnu/release/reconfd
#
# `--target` keeps these artifacts apart from target/release (the .deb and .rpm binary), and
# keeps RUSTFLAGS off build scripts and proc macros, which must stay dynamic. What a static
# glibc binary cannot do, and what reconfd does instead: docs/coreos.md ("The static binary").
#
# Prints the binary's path on stdout (progress goes to stderr). Fails if the result is not
# static. Cargo decides whether anything needs rebuilding, so running it again is cheap.
set -euo pipefail
cd "$(dirname "$0")/.."
triple=x86_64-unknown-linux-gnu
bin=target/$triple/release/reconfd
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    "${CARGO:-cargo}" build --release --locked --target "$triple" --bin reconfd >&2
# ldd names no libraries for a static executable ("not a dynamic executable" for a static
# one, "statically linked" for a static-pie one): a "=>" line means something is linked
# dynamically after all.
if ldd "$bin" 2>&1 | grep -q '=>'; then
    echo "build-static: $bin is linked dynamically:" >&2
    ldd "$bin" >&2
    exit 1
fi
echo "$bin"
