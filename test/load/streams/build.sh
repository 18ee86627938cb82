#!/usr/bin/env bash
# Builds the benchmark's Kafka Streams relay outside the repo: resolves kafka-streams (the broker's
# version, from infra/kafka/kafka.env) and its dependencies from Maven Central into the cache, then
# compiles StreamsRelay.java there. Prints the classpath to run it with. Idempotent: a finished
# build of the same source is reused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=../../../infra/kafka/kafka.env
source "$here/../../../infra/kafka/kafka.env"
cache="${ORDERFLOW_CACHE:-$HOME/.cache/orderflow}/kafka-streams-$KAFKA_VERSION"
libs="$cache/libs"
classes="$cache/classes"

die() { echo "streams-relay: $*" >&2; exit 1; }

if [[ ! -f "$cache/.resolved" ]]; then
  command -v mvn >/dev/null || die "mvn not found: apt-get install -y maven"
  echo "streams-relay: resolving kafka-streams $KAFKA_VERSION from Maven Central into $cache" >&2
  rm -rf "$libs" && mkdir -p "$libs"
  mvn -q -B -f "$here/pom.xml" -Dkafka.version="$KAFKA_VERSION" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$libs" >&2
  ls "$libs"/kafka-streams-"$KAFKA_VERSION".jar >/dev/null || die "resolution finished without the kafka-streams jar"
  touch "$cache/.resolved"
fi

source_sum=$(sha256sum "$here/StreamsRelay.java" | cut -d' ' -f1)
if [[ ! -f "$classes/StreamsRelay.class" || $(cat "$classes/.source" 2>/dev/null) != "$source_sum" ]]; then
  command -v javac >/dev/null || die "javac not found: install a JDK 17 (apt-get install -y openjdk-17-jdk-headless)"
  rm -rf "$classes" && mkdir -p "$classes"
  javac -d "$classes" -cp "$libs/*" "$here/StreamsRelay.java" >&2
  echo "$source_sum" >"$classes/.source"
fi

echo "$libs/*:$classes"
