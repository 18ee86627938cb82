#!/usr/bin/env bash
# Runs the OS redis-server on loopback for local use and tests: no persistence (REDIS_PERSIST=1:
# append-only file, fsync on every write; REDIS_FSYNC=everysec fsyncs once a second, which survives
# a crash of Redis itself but not of the machine), pid and log under
# .run/redis/. `start` is idempotent (a Redis already answering on the port is used as it is).
#   redis.sh start | stop | status        (port: REDIS_PORT, default 6379)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
port="${REDIS_PORT:-6379}"
dir="${ORDERFLOW_STATE:-$root/.run}/redis"
pidfile="$dir/redis.pid"

die() { echo "redis: $*" >&2; exit 1; }
answers() { [[ $(redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null) == PONG ]]; }

ensure_installed() {
  command -v redis-server >/dev/null && return 0
  if [[ $(id -u) -eq 0 ]]; then
    apt-get install -y -qq redis-server >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq redis-server >/dev/null; }
  else
    die "redis-server is missing: run  sudo apt-get install -y redis-server"
  fi
}

start() {
  if answers; then echo "redis: already answering on 127.0.0.1:$port"; return 0; fi
  ensure_installed
  mkdir -p "$dir"
  local aof=no
  [[ ${REDIS_PERSIST:-0} == 1 ]] && aof=yes
  redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly "$aof" --appendfsync "${REDIS_FSYNC:-always}" --daemonize yes \
    --pidfile "$pidfile" --logfile "$dir/redis.log" --dir "$dir"
  local deadline=$((SECONDS + 20))
  until answers; do
    ((SECONDS < deadline)) || { tail -n 20 "$dir/redis.log" >&2; die "not answering after 20s"; }
    sleep 0.1
  done
  echo "redis: ready on 127.0.0.1:$port (log: $dir/redis.log)"
}

stop() {
  if [[ -f $pidfile ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
    local pid deadline=$((SECONDS + 10))
    pid=$(cat "$pidfile")
    kill -TERM "$pid"
    while kill -0 "$pid" 2>/dev/null; do
      ((SECONDS < deadline)) || { kill -KILL "$pid"; break; }
      sleep 0.1
    done
  fi
  rm -f "$pidfile"
  echo "redis: stopped"
}

status() {
  if answers; then
    echo "redis: running on 127.0.0.1:$port$([[ -f $pidfile ]] && echo " (pid $(cat "$pidfile"))")"
  else
    echo "redis: not running"
    exit 3
  fi
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,5p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
