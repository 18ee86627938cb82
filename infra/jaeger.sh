#!/usr/bin/env bash
# Runs a real Jaeger v2 all-in-one on loopback for local tracing: UI and query API on :16686, OTLP on
# :4317 (gRPC) and :4318 (HTTP). Built once from the Go module proxy into the cache outside the repo
# (a few minutes on two cores); spans are kept in memory, so a restart starts empty.
#   jaeger.sh fetch    build it unless cached, then print the binary's path
#   jaeger.sh start    start it in the background (no-op when it answers already); returns when ready
#   jaeger.sh stop | status
set -euo pipefail
version="v1.76.0"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}/jaeger-$version"
state="${ORDERFLOW_STATE:-$root/.run}"
pidfile="$state/pids/jaeger.pid"
query="http://127.0.0.1:16686"

die() { echo "jaeger: $*" >&2; exit 1; }

# `go install module@version` refuses Jaeger (its go.mod has replace directives), so the build
# goes through a throwaway module that requires it as a tool.
fetch() {
  if [[ ! -x "$cache/jaeger" ]]; then
    command -v go >/dev/null || die "go not found: apt-get install -y golang-go"
    echo "jaeger: building $version from the Go module proxy into $cache (once, a few minutes)" >&2
    local work
    work="$(mktemp -d)"
    trap 'rm -rf "$work"' RETURN
    mkdir -p "$cache"
    (
      cd "$work"
      go mod init jaegerbuild >/dev/null 2>&1
      go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$version" >&2
      go build -o "$cache/jaeger.partial" github.com/jaegertracing/jaeger/cmd/jaeger >&2
    )
    mv "$cache/jaeger.partial" "$cache/jaeger"
  fi
  echo "$cache/jaeger"
}

answering() { curl -fs -o /dev/null "$query/api/services"; }

start() {
  if answering; then return 0; fi
  local bin pid deadline
  bin="$(fetch)"
  mkdir -p "$state/pids" "$state/logs"
  nohup "$bin" >>"$state/logs/jaeger.log" 2>&1 &
  pid=$!
  echo "$pid" >"$pidfile"
  deadline=$((SECONDS + 60))
  until answering; do
    kill -0 "$pid" 2>/dev/null || { tail -n 20 "$state/logs/jaeger.log" >&2; die "exited while starting (log: $state/logs/jaeger.log)"; }
    ((SECONDS < deadline)) || die "not ready in 60 s (log: $state/logs/jaeger.log)"
    sleep 0.2
  done
  echo "jaeger: ready — UI $query, OTLP http://127.0.0.1:4318"
}

stop() {
  local pid
  pid="$(cat "$pidfile" 2>/dev/null || true)"
  [[ -n $pid ]] && kill -TERM "$pid" 2>/dev/null || true
  rm -f "$pidfile"
}

status() {
  if answering; then echo "jaeger: running, UI $query"; else echo "jaeger: not running"; return 1; fi
}

case ${1:-} in
  fetch) fetch ;;
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,7p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
