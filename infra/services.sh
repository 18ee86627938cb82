#!/usr/bin/env bash
# Runs orderflow's processes in the background for `make up`: the mail sink, the five services and
# the admin service, each with a pid file and a log under .run/, and waits until every one reports
# ready. The admin service gets ADMIN_TOKEN from the environment, or else a random token made once
# into .run/admin-token (mode 600, reused later; the CLI reads it from there too). The order API
# verifies bearer tokens with ORDER_AUTH_JWKS_URL or ORDER_AUTH_PUBLIC_KEY_FILE when one is set,
# or else with the public half of a development key pair made once under .run/auth/ (the private
# key, mode 600, is what `npx orderflow token` signs with).
#   services.sh start | stop | status
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
state="${ORDERFLOW_STATE:-$root/.run}"
mkdir -p "$state/pids" "$state/logs"

# name  entry  ops-port (readiness URL port)  extra env
services=(
  "mailsink services/mailsink/main.ts 8025"
  "inventory services/inventory/main.ts 9103"
  "payment services/payment/main.ts 9102"
  "notification services/notification/main.ts 9104"
  "orchestrator services/orchestrator/main.ts 9105"
  "order services/order/main.ts 9101"
  "admin services/admin/main.ts 9106 ADMIN_PORT=8081"
)

pid_of() { cat "$state/pids/$1.pid" 2>/dev/null || true; }
alive() { local pid; pid=$(pid_of "$1"); [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; }
# The admin token: $ADMIN_TOKEN when set, otherwise the one in $state/admin-token, made on first use.
admin_token() {
  if [[ -n ${ADMIN_TOKEN:-} ]]; then printf '%s' "$ADMIN_TOKEN"; return; fi
  local file="$state/admin-token"
  if [[ ! -s $file ]]; then (umask 077 && od -An -tx1 -N32 /dev/urandom | tr -d ' \n' >"$file"); fi
  chmod 600 "$file"
  cat "$file"
}
# The order API's key source: the caller's, or the development key pair, made on first use.
order_auth_env() {
  if [[ -n ${ORDER_AUTH_JWKS_URL:-} || -n ${ORDER_AUTH_PUBLIC_KEY_FILE:-} ]]; then return; fi
  printf 'ORDER_AUTH_PUBLIC_KEY_FILE=%s' "$(node --import tsx "$root/infra/dev-signing-key.ts" "$state/auth")"
}
ready_url() { if [[ $1 == mailsink ]]; then echo "http://127.0.0.1:$2/messages"; else echo "http://127.0.0.1:$2/health/ready"; fi; }

# Starts one process in the background with its pid file.
launch() {
  local name=$1 entry=$2 port=$3 extra=$4 token=$5 auth=$6
  # Only the admin service sees the token (in its environment, not on a command line); only the
  # order service gets the key to verify its callers' tokens with.
  [[ $name == order ]] || auth=""
  # shellcheck disable=SC2086 # $extra and $auth hold NAME=value words
  OPS_PORT="$port" MAILSINK_DIR="$state/mail" ADMIN_TOKEN="$([[ $name == admin ]] && printf '%s' "$token")" \
    nohup env $extra $auth node --import tsx "$root/$entry" >>"$state/logs/$name.log" 2>&1 &
  echo $! >"$state/pids/$name.pid"
}

start() {
  local line name entry port extra token auth deadline
  token="$(admin_token)"
  auth="$(order_auth_env)"
  for line in "${services[@]}"; do
    read -r name entry port extra <<<"$line"
    if alive "$name"; then continue; fi
    launch "$name" "$entry" "$port" "$extra" "$token" "$auth"
  done
  deadline=$((SECONDS + ${SERVICES_READY_TIMEOUT:-90}))
  for line in "${services[@]}"; do
    read -r name entry port _ <<<"$line"
    until curl -fs -o /dev/null "$(ready_url "$name" "$port")"; do
      if ! alive "$name"; then
        echo "services: $name exited; last lines of $state/logs/$name.log:" >&2
        tail -n 30 "$state/logs/$name.log" >&2
        exit 1
      fi
      ((SECONDS < deadline)) || { echo "services: $name not ready in time (log: $state/logs/$name.log)" >&2; exit 1; }
      sleep 0.2
    done
  done
  echo "services: all ready — API http://127.0.0.1:8080, admin http://127.0.0.1:8081 (dashboard /dashboard; token: \$ADMIN_TOKEN or $state/admin-token; API tokens: npx orderflow token --customer c-1), mail http://127.0.0.1:8025/messages, logs $state/logs/"
}

stop() {
  local line name entry port pid deadline
  for ((i = ${#services[@]} - 1; i >= 0; i--)); do
    read -r name entry port _ <<<"${services[$i]}"
    alive "$name" && kill -TERM "$(pid_of "$name")" 2>/dev/null || true
  done
  deadline=$((SECONDS + 40))
  for line in "${services[@]}"; do
    read -r name entry port _ <<<"$line"
    while alive "$name"; do
      if ((SECONDS >= deadline)); then kill -KILL "$(pid_of "$name")" 2>/dev/null || true; break; fi
      sleep 0.2
    done
    rm -f "$state/pids/$name.pid"
  done
  echo "services: stopped"
}

status() {
  local line name entry port any=0
  for line in "${services[@]}"; do
    read -r name entry port _ <<<"$line"
    if alive "$name"; then
      any=1
      printf '%-13s running (pid %s) ready=%s\n' "$name" "$(pid_of "$name")" "$(curl -fs -o /dev/null -w '%{http_code}' "$(ready_url "$name" "$port")" || echo no)"
    else
      printf '%-13s stopped\n' "$name"
    fi
  done
  ((any)) || exit 3
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  status) status ;;
  *) sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
