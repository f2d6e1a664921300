#!/usr/bin/env bash
# Starts (up) or stops (down) a local audiochat: Redis on loopback, the gateway, one worker.
# Logs and pid files go under .run/.
set -euo pipefail
cd "$(dirname "$0")/.."

# Pid files and logs; RUN_DIR (relative to the checkout) lets several stacks run side by side.
RUN=${RUN_DIR:-.run}
VENV=${VENV:-.venv}
API_PORT=${API_PORT:-8000}
REDIS_PORT=${REDIS_PORT:-6379}
export AUDIOCHAT_REDIS_URL=${AUDIOCHAT_REDIS_URL:-redis://127.0.0.1:${REDIS_PORT}/0}
export AUDIOCHAT_MODEL=${AUDIOCHAT_MODEL:-embedded}
mkdir -p "$RUN"

running() { [ -f "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }

wait_until() {  # wait_until SECONDS WHAT COMMAND...
  local limit=$1 what=$2; shift 2
  for _ in $(seq $((limit * 5))); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.2
  done
  echo "timed out waiting for $what; see $RUN/*.log" >&2
  return 1
}

up() {
  if redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    echo "redis: using the server already on 127.0.0.1:$REDIS_PORT"
  else
    redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --daemonize yes \
      --pidfile "$PWD/$RUN/redis.pid" --logfile "$PWD/$RUN/redis.log" --dir "$PWD/$RUN"
    wait_until 10 redis redis-cli -p "$REDIS_PORT" ping
    echo "redis: started on 127.0.0.1:$REDIS_PORT"
  fi
  if ! running gateway; then
    nohup "$VENV/bin/audiochat" serve --host 127.0.0.1 --port "$API_PORT" \
      >"$RUN/gateway.log" 2>&1 &
    echo $! >"$RUN/gateway.pid"
  fi
  if ! running worker; then
    nohup "$VENV/bin/audiochat" worker >"$RUN/worker.log" 2>&1 &
    echo $! >"$RUN/worker.pid"
  fi
  wait_until 30 "the gateway" curl -sf "http://127.0.0.1:$API_PORT/readyz"
  echo "gateway: http://127.0.0.1:$API_PORT"
  echo "worker: loading the $AUDIOCHAT_MODEL model (the first start takes longer)..."
  # Ready means this very worker process beats: a heartbeat left by a worker that crashed (it
  # lives on for its TTL) does not count, and a worker that exits ends the wait at once.
  for _ in $(seq 300); do
    if ! running worker; then
      echo "the worker exited; see $RUN/worker.log" >&2
      return 1
    fi
    worker_ready 2>/dev/null && break
    sleep 1
  done
  if ! worker_ready 2>/dev/null; then
    echo "timed out waiting for the worker; see $RUN/*.log" >&2
    return 1
  fi
  echo "worker: ready"
}

worker_ready() {
  "$VENV/bin/python" - "$(cat "$RUN/worker.pid")" <<'PY'
import os, socket, sys

import redis

from shared.workers import WorkerRegistry

pid = int(sys.argv[1])
live = WorkerRegistry(redis.Redis.from_url(os.environ["AUDIOCHAT_REDIS_URL"])).live_workers()
sys.exit(not any(w.pid == pid and w.hostname == socket.gethostname() for w in live))
PY
}

down() {
  for name in worker gateway; do
    if running "$name"; then
      kill "$(cat "$RUN/$name.pid")" 2>/dev/null || true
      for _ in $(seq 50); do running "$name" || break; sleep 0.2; done
      running "$name" && kill -9 "$(cat "$RUN/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$RUN/$name.pid"
  done
  if running redis; then
    redis-cli -p "$REDIS_PORT" shutdown nosave >/dev/null 2>&1 || kill "$(cat "$RUN/redis.pid")"
    rm -f "$RUN/redis.pid"
  fi
  echo "stopped"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  *) echo "usage: $0 up|down" >&2; exit 2 ;;
esac
