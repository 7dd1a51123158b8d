#!/usr/bin/env bash
# The test command: installs what the tests need, starts a throw-away PostgreSQL, runs the suite.
#   bash scripts/test.sh [pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[test.sh] %s\n' "$*" >&2; }

# 1. Python environment
if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
log "installing biq-bot and its test dependencies"
.venv/bin/python -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
if ! .venv/bin/python -m pip install --quiet -e '.[test]' >/tmp/biq-pip.log 2>&1; then
  cat /tmp/biq-pip.log >&2
  log "pip install failed"
  exit 1
fi

# 2. PostgreSQL (Debian's packages; installed if missing), on a private port and data folder
pg_bin=""
for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
if [ -z "$pg_bin" ]; then
  log "installing PostgreSQL"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq postgresql >/dev/null
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && pg_bin="$d"; done
fi
pg_user=postgres
id "$pg_user" >/dev/null 2>&1 || useradd --system --home /nonexistent --shell /usr/sbin/nologin "$pg_user"
pg_dir=$(mktemp -d /tmp/biq-pg.XXXXXX)
chown "$pg_user" "$pg_dir"
pg_port=${BIQ_TEST_PG_PORT:-55432}
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u "$pg_user" -- "$@"; else "$@"; fi; }
cleanup() {
  as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$pg_dir"
}
trap cleanup EXIT
log "starting PostgreSQL ($pg_bin) on 127.0.0.1:$pg_port"
as_pg "$pg_bin/initdb" -D "$pg_dir/data" -U postgres --auth=trust -E UTF8 >/dev/null
as_pg "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/pg.log" -w \
  -o "-p $pg_port -k $pg_dir -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200" start >/dev/null
export BIQ_TEST_POSTGRES_URL="postgresql://postgres@127.0.0.1:$pg_port/postgres"

# 3. Dovecot for the IMAP tests (each test starts its own throw-away instance)
if ! command -v dovecot >/dev/null 2>&1 && [ ! -x /usr/sbin/dovecot ]; then
  log "installing Dovecot"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null && apt-get install -y -qq dovecot-imapd >/dev/null
  # the package starts a system-wide instance on port 143: the tests do not use it
  (service dovecot stop || pkill -x dovecot || true) >/dev/null 2>&1
fi
export BIQ_TEST_DOVECOT=$(command -v dovecot || echo /usr/sbin/dovecot)

# 4. The suite
log "running the tests"
set +e
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
  log "pytest collected no tests: that is a failure"
  status=1
fi
exit "$status"
