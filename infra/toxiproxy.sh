#!/usr/bin/env bash
# Builds Toxiproxy (a TCP fault proxy: latency, resets, partitions) from source with `go install`
# into the cache outside the repo, once; the fault suite runs it in front of Kafka and Redis.
#   toxiproxy.sh fetch   build it unless cached, then print the server binary's path
set -euo pipefail
version="v2.12.0"
bin="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}/toxiproxy-$version"

die() { echo "toxiproxy: $*" >&2; exit 1; }

fetch() {
  if [[ ! -x "$bin/server" ]]; then
    command -v go >/dev/null || die "go not found: apt-get install -y golang-go"
    echo "toxiproxy: building $version with go install into $bin (once)" >&2
    mkdir -p "$bin"
    GOBIN="$bin" go install "github.com/Shopify/toxiproxy/v2/cmd/server@$version" >&2
  fi
  echo "$bin/server"
}

case ${1:-} in
  fetch) fetch ;;
  *) sed -n '2,4p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; exit 2 ;;
esac
