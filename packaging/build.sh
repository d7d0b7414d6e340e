#!/usr/bin/env bash
# Builds both packages from the metadata in Cargo.toml:
#   target/debian/reconfd_<version>-1_<arch>.deb        ([package.metadata.deb], cargo-deb)
#   target/generate-rpm/reconfd-<version>-1.<arch>.rpm  ([package.metadata.generate-rpm])
# Needs cargo-deb and cargo-generate-rpm; .ci/install-deps installs them when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
# cargo deb runs `cargo build --release` itself; cargo generate-rpm packages that same binary.
cargo deb --locked
cargo generate-rpm
ls -1 target/debian/*.deb target/generate-rpm/*.rpm
