#!/bin/sh
# Re-renders every corpus case with the Go oracle (confd 0.17's template semantics) and
# lists each case whose committed `expected` / `expected-error` differs from Go's result.
# `verify.sh --write` rewrites them instead. Needs Go 1.19, the Go confd is built with (stdlib
# only, offline): Debian bookworm's golang-1.19-go (/usr/lib/go-1.19/bin/go, which
# .ci/install-deps installs), or $GO naming another Go 1.19.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
write=0
[ "${1:-}" = "--write" ] && write=1

# text/template changed after 1.19 (range over integers, `else with`, ...): a newer Go would
# produce outputs confd never does.
if [ -z "${GO:-}" ]; then
    if [ -x /usr/lib/go-1.19/bin/go ]; then GO=/usr/lib/go-1.19/bin/go; else GO=go; fi
fi
version=$("$GO" version 2>/dev/null || true)
case "$version" in
    "go version go1.19 "* | "go version go1.19."*) ;;
    *)
        echo "verify.sh: needs Go 1.19 (confd's Go); '$GO version' says: ${version:-nothing (not installed?)}" >&2
        echo "verify.sh: install golang-1.19-go (Debian bookworm) or set GO=/path/to/go1.19/bin/go" >&2
        exit 2
        ;;
esac

# Cases read these; tests/gotemplate.rs sets the same values.
export RECONFD_CORPUS_VAR=corpus-value
unset RECONFD_CORPUS_UNSET || true

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$here/oracle" && GOFLAGS=-mod=mod "$GO" build -o "$tmp/oracle" .)

bad=0
for case in "$here"/cases/*/ "$here"/known-differences/*/; do
    [ -f "$case/template.tmpl" ] || continue
    case=${case%/}
    name=${case#"$here"/}
    rc=0
    "$tmp/oracle" "$case" >"$tmp/out" || rc=$?
    case $rc in
        0) want=expected other=expected-error ;;
        3) want=expected-error other=expected ;;
        *) echo "ORACLE FAILED: $name" >&2; bad=1; continue ;;
    esac
    if [ $write = 1 ]; then
        cp "$tmp/out" "$case/$want"
        rm -f "$case/$other"
    elif [ -f "$case/$other" ] || ! cmp -s "$tmp/out" "$case/$want"; then
        echo "DIFFERS: $name ($want)"
        if [ -f "$case/$want" ]; then diff "$case/$want" "$tmp/out" | sed 's/^/    /' || true; fi
        bad=1
    fi
done
[ $bad = 0 ] || { echo "verify.sh: some cases differ from Go's output" >&2; exit 1; }
[ $write = 1 ] && echo "verify.sh: rewrote expected outputs" || echo "verify.sh: all cases match Go"
