#!/usr/bin/env bash
# Install and start what the web and browser tests need (idempotent; safe to run again):
#   * Debian `chromium`    -> /usr/bin/chromium, used by tests/browser (Playwright, no browser download)
#   * Debian `postgresql`  -> a cluster on 127.0.0.1, role `sketch2face`, database `sketch2face_test`
#   * Debian `poppler-utils` -> pdftoppm/pdftotext, to render the appeal-sheet PDF in its tests
#
# The script exports nothing. It writes the test database URL to
#     test-artifacts/ci_services/postgres_url      (gitignored; mode 0600)
# and prints it with the password masked. tests/web/conftest.py reads SKETCH2FACE_TEST_POSTGRES_URL
# first and that file second; with neither, the web suite's PostgreSQL parameter is skipped.
# The role's password is random, made on the first run and kept in that file (none in the repo).
#
# Usage: scripts/ci_services.sh [--no-install] [--no-postgres] [--no-chromium]
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
OUT_DIR="$REPO_ROOT/test-artifacts/ci_services"
URL_FILE="$OUT_DIR/postgres_url"
DB_NAME="sketch2face_test"
DB_USER="sketch2face"
install=1 want_pg=1 want_chromium=1
for arg in "$@"; do
  case "$arg" in
    --no-install) install=0 ;;
    --no-postgres) want_pg=0 ;;
    --no-chromium) want_chromium=0 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "error: run as root or install sudo (apt-get and the postgres cluster need root)" >&2; exit 1
  fi
fi

packages=()
[ "$want_chromium" = 1 ] && ! [ -x /usr/bin/chromium ] && packages+=(chromium)
[ "$want_pg" = 1 ] && ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1 && packages+=(postgresql)
# poppler-utils: pdftoppm/pdftotext, with which tests/test_appeal_sheet.py renders the appeal sheet
command -v pdftoppm >/dev/null 2>&1 || packages+=(poppler-utils)
if [ "${#packages[@]}" -gt 0 ]; then
  if [ "$install" = 0 ]; then echo "error: missing ${packages[*]} and --no-install given" >&2; exit 1; fi
  echo "installing: ${packages[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"
fi
[ "$want_chromium" = 1 ] && echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo 'installed at /usr/bin/chromium')"

if [ "$want_pg" = 1 ]; then
  version="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  as_pg() { if [ -n "$SUDO" ]; then sudo -u postgres "$@"; else runuser -u postgres -- "$@"; fi; }
  if ! $SUDO pg_lsclusters --no-header | awk '{print $1" "$2}' | grep -qx "$version main"; then
    $SUDO pg_createcluster "$version" main
  fi
  if ! $SUDO pg_lsclusters --no-header | awk -v v="$version" '$1==v && $2=="main" {print $4}' | grep -q online; then
    $SUDO pg_ctlcluster "$version" main start
  fi
  port="$($SUDO pg_lsclusters --no-header | awk -v v="$version" '$1==v && $2=="main" {print $3}')"
  # reuse the password of an earlier run (so exported URLs stay valid), else make a random one
  password="$(sed -n 's|^postgresql+psycopg://[^:]*:\([0-9a-f]*\)@.*|\1|p' "$URL_FILE" 2>/dev/null || true)"
  [ -n "$password" ] || password="$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')"
  as_pg psql -v ON_ERROR_STOP=1 -q -p "$port" -d postgres <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '$DB_USER') THEN
    CREATE ROLE $DB_USER LOGIN;
  END IF;
END \$\$;
ALTER ROLE $DB_USER WITH LOGIN PASSWORD '$password';
SQL
  if ! as_pg psql -p "$port" -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$DB_NAME'" | grep -q 1; then
    as_pg createdb -p "$port" -O "$DB_USER" "$DB_NAME"
  fi
  url="postgresql+psycopg://$DB_USER:$password@127.0.0.1:$port/$DB_NAME"
  mkdir -p "$OUT_DIR"
  (umask 077 && printf '%s\n' "$url" > "$URL_FILE")
  echo "postgresql $version: cluster main online on 127.0.0.1:$port, database $DB_NAME"
  rel="${URL_FILE#"$REPO_ROOT"/}"
  echo "test URL (password masked): ${url/:$password@/:***@}"
  echo "written to $rel (the tests read it); to use it elsewhere:"
  echo "  export SKETCH2FACE_TEST_POSTGRES_URL=\"\$(cat $rel)\""
fi
