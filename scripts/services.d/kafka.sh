# shellcheck shell=bash
# scripts/services.d/kafka.sh — Apache Kafka on 127.0.0.1:9092 (sourced by scripts/services).
#
# A real single-node Kafka in KRaft mode (one JVM: broker + controller, controller listener on
# 127.0.0.1:9093), run on Java 17 from the org.apache.kafka:kafka_2.13 jars of Maven Central
# (version in scripts/java/kafka/pom.xml; config templates beside it). Topics are auto-created
# with 1 partition; internal topics have replication factor 1.
#   jars:       $SVC_CACHE/kafka/lib-<pom hash>   (resolved once through ~/.m2)
#   data, conf: $SVC_DIR/kafka/{data,conf}        (kept across restarts; remove for a new cluster)
#   log:        $SVC_DIR/kafka/log
# Healthy when kcat (Debian package) gets metadata that lists the broker.
# Stop: the driver's default (TERM to the JVM's process group; Kafka shuts down cleanly).

# shellcheck source=../java/lib.sh
source "$REPO/scripts/java/lib.sh"

kafka_timeout=180
KAFKA_HEAP_OPTS=${KAFKA_HEAP_OPTS:-"-Xms256m -Xmx512m"}

kafka_install() {
  svc_apt_install kcat || return 1
  tm_java_resolve kafka
}

# _kafka_cmd: sets the array KAFKA_CMD to the java command line, main class not included.
_kafka_cmd() {
  local d="$SVC_DIR/kafka" lib
  lib=$(tm_java_lib kafka)
  # shellcheck disable=SC2206 # KAFKA_HEAP_OPTS is a list of flags
  KAFKA_CMD=(java $KAFKA_HEAP_OPTS -XX:+UseG1GC -XX:MaxGCPauseMillis=20
    -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true
    "-Dlog4j2.configurationFile=file:$REPO/scripts/java/kafka/log4j2.properties"
    "-Dkafka.logs.dir=$d" -cp "$lib/*")
}

kafka_start() {
  local d="$SVC_DIR/kafka" p cid
  mkdir -p "$d/conf" "$d/data"
  for p in 9092 9093; do
    if svc_port_open "$p"; then
      svc_log "kafka: port $p is already in use by a process we did not start"
      return 1
    fi
  done
  sed "s|@DATA@|$d/data|g" "$REPO/scripts/java/kafka/server.properties.in" >"$d/conf/server.properties"
  _kafka_cmd
  if [[ ! -f $d/data/meta.properties ]]; then
    # `kafka-storage format` with a new cluster id (16 random bytes, URL-safe base64, no padding),
    # never one that starts with '-': the tool's argument parser takes it for an option and fails
    # (one start in 64; Kafka's own Uuid.randomUuid() draws again for the same reason)
    cid=-
    while [[ $cid == -* ]]; do
      cid=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    done
    if ! "${KAFKA_CMD[@]}" kafka.tools.StorageTool format --ignore-formatted \
      -t "$cid" -c "$d/conf/server.properties" >>"$d/log" 2>&1; then
      svc_log "kafka: storage format failed (see $d/log)"
      return 1
    fi
  fi
  tm_launch kafka "${KAFKA_CMD[@]}" kafka.Kafka "$d/conf/server.properties"
}

kafka_healthy() {
  local md
  md=$(kcat -b 127.0.0.1:9092 -L -m 3 2>/dev/null) || return 1
  [[ $md == *" 1 brokers:"* ]]
}

kafka_env() {
  echo 'export TIDEMARK_KAFKA_BROKERS=127.0.0.1:9092'
}
