#!/usr/bin/env bash
# Installs what a fresh clone needs: the OS packages (librdkafka build libraries, Redis, kcat, Java,
# Chromium for the dashboard test)
# and the npm dependencies, building the Kafka client against the OS libraries (CKJS_LINKING=dynamic).
# Idempotent and quick when everything is already there.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

packages=(zlib1g-dev libssl-dev libcurl4-openssl-dev libzstd-dev liblz4-dev libsasl2-dev redis-server kcat openjdk-17-jre-headless maven docker-compose chromium)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]} > 0)); then
  if [[ $(id -u) -eq 0 ]]; then
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "setup: missing OS packages. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
fi

stamp="node_modules/.orderflow-lock"
if [[ ! -f "$stamp" ]] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: installing npm dependencies (builds the Kafka client, about 2 minutes the first time)"
  CKJS_LINKING=dynamic npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi
