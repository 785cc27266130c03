#!/usr/bin/env bash
# Build the documentation offline with warnings as errors.
#
#   bash docs/build.sh            # HTML in docs/_build/html
#
# Math renderer: MathJax 3 (pinned below) is fetched from the npm registry with `npm pack`,
# which checks the tarball against the registry's sha512 integrity; we check it again against
# the pinned value, unpack its `es5/` components into docs/_build/_vendor/ (ignored by git) and
# Sphinx copies them next to the pages. The built site needs no network to show equations.
# A second run reuses the unpacked copy.
set -euo pipefail

MATHJAX_VERSION="3.2.2"
MATHJAX_INTEGRITY="sha512-Bt+SSVU8eBG27zChVewOicYs7Xsdt40qm4+UpHyX7k0/O9NliPc+x77k1/FEsPsjKPZGJvtRZM1vO+geW0OhGw=="

DOCS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$DOCS")"
VENDOR="$DOCS/_build/_vendor"
TARGET="$VENDOR/mathjax"
STAMP="$TARGET/.version-$MATHJAX_VERSION"
SPHINX_BUILD="${SPHINX_BUILD:-$ROOT/.venv/bin/sphinx-build}"
[ -x "$SPHINX_BUILD" ] || SPHINX_BUILD="sphinx-build"

if [ ! -f "$STAMP" ]; then
    command -v npm > /dev/null || { echo "build.sh: npm is needed to fetch MathJax" >&2; exit 1; }
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' EXIT
    (cd "$work" && npm pack --silent "mathjax@$MATHJAX_VERSION" > /dev/null)
    tarball="$work/mathjax-$MATHJAX_VERSION.tgz"
    actual="sha512-$(openssl dgst -sha512 -binary "$tarball" | base64 -w0)"
    if [ "$actual" != "$MATHJAX_INTEGRITY" ]; then
        echo "build.sh: MathJax tarball integrity mismatch: $actual" >&2
        exit 1
    fi
    tar -xzf "$tarball" -C "$work" package/es5 package/LICENSE
    rm -rf "$TARGET"
    mkdir -p "$VENDOR"
    mv "$work/package/es5" "$TARGET"
    mv "$work/package/LICENSE" "$TARGET/LICENSE"
    touch "$STAMP"
fi

# -E: a fresh environment every time, so no page keeps a stale sidebar from an earlier build.
exec "$SPHINX_BUILD" -E -W --keep-going -n -b html "$DOCS" "$DOCS/_build/html" "$@"
