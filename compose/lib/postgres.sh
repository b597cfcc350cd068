#!/usr/bin/env bash
# PostgreSQL for the local stack: Debian's server, our own cluster under .haltless/pg on loopback.
set -euo pipefail
source "$(dirname "$0")/../stack.env"
data="$HALTLESS_STATE_DIR/pg/data"
sock="$HALTLESS_STATE_DIR/pg/run"

bindir() { ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1; }
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

install() {
  if [ -z "$(bindir)" ] || [ ! -x "$(bindir)/initdb" ]; then
    log "installing PostgreSQL (Debian packages)"
    apt-get update -qq && apt-get install -y -qq postgresql postgresql-contrib >/dev/null
  fi
  # Debian starts its own cluster on 5432; we never use it.
}

running() { [ -f "$data/postmaster.pid" ] && as_pg "$(bindir)/pg_ctl" -D "$data" status >/dev/null 2>&1; }

start() {
  install
  local bin; bin=$(bindir)
  mkdir -p "$HALTLESS_STATE_DIR/pg" "$sock"
  if [ "$(id -u)" = 0 ]; then chown postgres: "$HALTLESS_STATE_DIR/pg" "$sock"; chown postgres: "$HALTLESS_STATE_DIR/logs"; fi
  if [ ! -f "$data/PG_VERSION" ]; then
    log "initialising the PostgreSQL cluster in $data"
    as_pg "$bin/initdb" -D "$data" -U postgres --auth-local=trust --auth-host=scram-sha-256 -E UTF8 >/dev/null
    local preload=""
    if ls /usr/share/postgresql/*/extension/timescaledb.control >/dev/null 2>&1; then preload="shared_preload_libraries = 'timescaledb'"; fi
    cat >>"$data/postgresql.conf" <<CONF
listen_addresses = '127.0.0.1'
unix_socket_directories = '$sock'
max_connections = 300
shared_buffers = 256MB
synchronous_commit = on
$preload
CONF
  fi
  if ! running; then
    log "starting PostgreSQL on 127.0.0.1:$HALTLESS_PG_PORT"
    as_pg "$bin/pg_ctl" -D "$data" -o "-p $HALTLESS_PG_PORT" -l "$HALTLESS_STATE_DIR/logs/postgres.log" -w -t 60 start >/dev/null
  fi
  for _ in $(seq 60); do
    "$bin/pg_isready" -q -h 127.0.0.1 -p "$HALTLESS_PG_PORT" && break
    sleep 1
  done
  as_pg "$bin/psql" -q -h "$sock" -p "$HALTLESS_PG_PORT" -U postgres -d postgres -v ON_ERROR_STOP=1 <<'SQL' >/dev/null
SELECT 'CREATE ROLE haltless LOGIN SUPERUSER PASSWORD ''haltless'''
WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'haltless') \gexec
SELECT 'CREATE DATABASE haltless OWNER haltless'
WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'haltless') \gexec
SQL
}

stop() {
  if running; then
    log "stopping PostgreSQL"
    as_pg "$(bindir)/pg_ctl" -D "$data" -m fast -w stop >/dev/null
  fi
}

status() {
  if running; then echo "postgres  running  $HALTLESS_DATABASE_URL"; else echo "postgres  stopped"; fi
}

"${1:-status}"
