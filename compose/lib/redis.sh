#!/usr/bin/env bash
# Redis for the local stack: Debian's server, our own instance under .haltless/redis on loopback.
# Usage: compose/lib/redis.sh install|start|stop|status|remove
# REDIS_INSTANCE (default "main") with its own HALTLESS_REDIS_PORT runs an independent server under
# .haltless/redis/instances/<name> (e.g. for outage tests); `remove` stops such an instance and deletes it.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=../stack.env
source "$(dirname "$0")/../stack.env"
instance="${REDIS_INSTANCE:-main}"
dir="$HALTLESS_STATE_DIR/redis"
logfile="$HALTLESS_STATE_DIR/logs/redis.log"
if [ "$instance" != main ]; then
  dir="$HALTLESS_STATE_DIR/redis/instances/$instance"
  logfile="$HALTLESS_STATE_DIR/logs/redis-$instance.log"
fi
pidfile="$dir/redis.pid"

install() {
  if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
    log "installing Redis (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
  fi
  # Debian's package may start its own server on 6379; we never use it.
}

running() { [ "$(redis-cli -h 127.0.0.1 -p "$HALTLESS_REDIS_PORT" ping 2>/dev/null)" = PONG ]; }

start() {
  install
  mkdir -p "$dir"
  if ! running; then
    log "starting Redis on 127.0.0.1:$HALTLESS_REDIS_PORT"
    redis-server --port "$HALTLESS_REDIS_PORT" --bind 127.0.0.1 --dir "$dir" --daemonize yes \
      --pidfile "$pidfile" --logfile "$logfile" --save 60 1000 --appendonly no >/dev/null
  fi
  for _ in $(seq 60); do running && return 0; sleep 0.5; done
  log "Redis did not answer within 30 s; see $logfile"
  tail -n 20 "$logfile" >&2
  return 1
}

stop() {
  if running; then
    log "stopping Redis"
    redis-cli -h 127.0.0.1 -p "$HALTLESS_REDIS_PORT" shutdown save >/dev/null 2>&1 || true
    for _ in $(seq 60); do running || break; sleep 0.5; done
  fi
}

status() {
  if running; then echo "redis     running  $HALTLESS_REDIS_URL"; else echo "redis     stopped  $HALTLESS_REDIS_URL"; fi
}

remove() {
  [ "$instance" != main ] || { log "refusing to remove the main Redis"; return 1; }
  stop
  rm -rf "$dir" "$logfile"
}

cmd=${1:-status}
case "$cmd" in
  install | start | stop | status | remove) "$cmd" ;;
  *) echo "usage: $0 install|start|stop|status|remove" >&2; exit 2 ;;
esac
