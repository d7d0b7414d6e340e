#!/usr/bin/env bash
# Builds both packages from the metadata in Cargo.toml:
#   target/debian/reconfd_<version>-1_<arch>.deb        ([package.metadata.deb], cargo-deb)
#   target/generate-rpm/reconfd-<version>-1.<arch>.rpm  ([package.metadata.generate-rpm])
# Needs cargo-deb and cargo-generate-rpm; .ci/install-deps installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo deb runs `cargo build --release` itself; cargo generate-rpm packages that same binary.
# The maintainer is written once, as [package] authors in Cargo.toml: cargo-deb reads it there
# for Maintainer, cargo-generate-rpm gets it here for Packager.
maintainer=$(sed -n 's/^authors = \["\(.*\)"\]$/\1/p' Cargo.toml)
[ -n "$maintainer" ] || { echo "Cargo.toml: no authors = [\"NAME <ADDRESS>\"] line" >&2; exit 1; }
cargo deb --locked
cargo generate-rpm --set-metadata "packager = \"$maintainer\""
ls -1 target/debian/*.deb target/generate-rpm/*.rpm
