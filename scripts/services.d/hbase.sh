# shellcheck shell=bash
# scripts/services.d/hbase.sh — Apache HBase, ZooKeeper on 127.0.0.1:2181 (sourced by
# scripts/services).
#
# A real standalone HBase: one JVM running HMaster with an in-process RegionServer and an
# embedded ZooKeeper, data on the local filesystem; run on Java 17 from the org.apache.hbase
# jars of Maven Central (version in scripts/java/hbase/pom.xml; config templates beside it).
#   ports:      ZooKeeper 2181, master 16000, region server 16020 (all 127.0.0.1; no web UIs)
#   jars:       $SVC_CACHE/hbase/lib-<pom hash>   (resolved once through ~/.m2)
#   probe:      $SVC_CACHE/hbase/probe            (built from scripts/java/hbase/probe)
#   data, conf: $SVC_DIR/hbase/{root,zk,conf}     (kept across restarts; remove for a new cluster)
#   log:        $SVC_DIR/hbase/log
# Healthy when the probe, a gohbase client, lists tables through the master, creates table
# `tidemark_probe` (family f) if missing, and puts then gets a cell through the region server.
# Stop: the driver's default (TERM to the JVM's process group; HBase needs ~25 s to close).

# shellcheck source=../java/lib.sh
source "$REPO/scripts/java/lib.sh"

hbase_timeout=300
HBASE_HEAP_OPTS=${HBASE_HEAP_OPTS:-"-Xms256m -Xmx2g"}

# JVM flags HBase needs on Java 11+/17 (those of bin/hbase for JDK 11 and later).
HBASE_JDK17_OPTS=(
  -Dorg.apache.hbase.thirdparty.io.netty.tryReflectionSetAccessible=true
  --add-modules jdk.unsupported
  --add-opens java.base/java.io=ALL-UNNAMED
  --add-opens java.base/java.nio=ALL-UNNAMED
  --add-opens java.base/sun.nio.ch=ALL-UNNAMED
  --add-opens java.base/java.lang=ALL-UNNAMED
  --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
  --add-opens java.base/java.lang.reflect=ALL-UNNAMED
  --add-opens java.base/java.util=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent=ALL-UNNAMED
  --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
  --add-opens java.base/java.net=ALL-UNNAMED
  --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
  --add-exports java.security.jgss/sun.security.krb5=ALL-UNNAMED
  --add-exports java.base/sun.net.dns=ALL-UNNAMED
  --add-exports java.base/sun.net.util=ALL-UNNAMED
)

hbase_install() {
  tm_java_resolve hbase || return 1
  # the health probe (go build is a no-op when nothing changed)
  (cd "$REPO" && go build -o "$SVC_CACHE/hbase/probe" ./scripts/java/hbase/probe) || {
    svc_log "hbase: building the gohbase probe failed"
    return 1
  }
}

hbase_start() {
  local d="$SVC_DIR/hbase" p lib
  mkdir -p "$d/conf" "$d/tmp"
  for p in 2181 16000 16020; do
    if svc_port_open "$p"; then
      svc_log "hbase: port $p is already in use by a process we did not start"
      return 1
    fi
  done
  sed "s|@DIR@|$d|g" "$REPO/scripts/java/hbase/hbase-site.xml.in" >"$d/conf/hbase-site.xml"
  lib=$(tm_java_lib hbase)
  # shellcheck disable=SC2086 # HBASE_HEAP_OPTS is a list of flags
  tm_launch hbase java -Dproc_master $HBASE_HEAP_OPTS -XX:+UseG1GC \
    -XX:OnOutOfMemoryError="kill -9 %p" -Djava.awt.headless=true -Djava.net.preferIPv4Stack=true \
    "${HBASE_JDK17_OPTS[@]}" \
    "-Dlog4j2.configurationFile=file:$REPO/scripts/java/hbase/log4j2.properties" \
    "-Dhbase.log.dir=$d" -Dhbase.log.file=log "-Dhbase.home.dir=$d" \
    -Dzookeeper.admin.enableServer=false '-Dzookeeper.4lw.commands.whitelist=*' \
    -cp "$d/conf:$lib/*" org.apache.hadoop.hbase.master.HMaster start
}

hbase_healthy() {
  svc_port_open 2181 || return 1
  "$SVC_CACHE/hbase/probe" -zk 127.0.0.1:2181 -timeout 15s
}

hbase_env() {
  echo 'export TIDEMARK_HBASE_ZK=127.0.0.1:2181'
}
