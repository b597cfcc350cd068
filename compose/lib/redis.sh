#!/usr/bin/env bash
# Redis for the local stack: Debian's server, our own instance under .haltless/redis on loopback.
set -euo pipefail
source "$(dirname "$0")/../stack.env"
dir="$HALTLESS_STATE_DIR/redis"

install() {
  if ! command -v redis-server >/dev/null; then
    log "installing Redis (Debian packages)"
    apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
  fi
}

running() { redis-cli -p "$HALTLESS_REDIS_PORT" ping 2>/dev/null | grep -q PONG; }

start() {
  install
  mkdir -p "$dir"
  if ! running; then
    log "starting Redis on 127.0.0.1:$HALTLESS_REDIS_PORT"
    redis-server --port "$HALTLESS_REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
      --pidfile "$dir/redis.pid" --logfile "$HALTLESS_STATE_DIR/logs/redis.log" --save 60 1000 >/dev/null
  fi
  for _ in $(seq 30); do running && return 0; sleep 0.5; done
  log "Redis did not answer; see $HALTLESS_STATE_DIR/logs/redis.log"
  return 1
}

stop() {
  if running; then
    log "stopping Redis"
    redis-cli -p "$HALTLESS_REDIS_PORT" shutdown nosave >/dev/null 2>&1 || true
  fi
}

status() {
  if running; then echo "redis     running  $HALTLESS_REDIS_URL"; else echo "redis     stopped"; fi
}

"${1:-status}"
