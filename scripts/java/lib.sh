# shellcheck shell=bash
# Helpers shared by scripts/services.d/kafka.sh and scripts/services.d/hbase.sh (sourced by the
# driver scripts/services, under set -euo pipefail). They use the driver's REPO, SVC_DIR,
# SVC_CACHE, svc_log and svc_apt_install.

TM_JAVA_DIR="$REPO/scripts/java"

# tm_java_check: Java 17+ and Maven (Debian's packages) must be there.
tm_java_check() {
  local v
  svc_apt_install openjdk-17-jre-headless maven || return 1
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  if [[ ! ${v%%.*} =~ ^[0-9]+$ ]] || ((${v%%.*} < 17)); then
    svc_log "java '$v' on PATH; 17 or newer needed"
    return 1
  fi
}

# tm_java_lib NAME: the folder holding the resolved jars of scripts/java/NAME/pom.xml.
# Its name carries a hash of the POM, so editing the POM resolves again.
tm_java_lib() {
  local h
  h=$(sha256sum "$TM_JAVA_DIR/$1/pom.xml")
  echo "$SVC_CACHE/$1/lib-${h:0:12}"
}

# tm_java_resolve NAME: copies the runtime jars of scripts/java/NAME/pom.xml, resolved from
# Maven Central through the default ~/.m2 repository, into $(tm_java_lib NAME).
# Fast (no Maven run) once done.
tm_java_resolve() {
  local name=$1 lib tmp
  lib=$(tm_java_lib "$name")
  if [[ -f $lib/.complete ]]; then return 0; fi
  tm_java_check || return 1
  tmp="$lib.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  svc_log "$name: resolving jars from Maven Central into $lib"
  if ! mvn -B -q -s "$TM_JAVA_DIR/maven-settings.xml" -f "$TM_JAVA_DIR/$name/pom.xml" \
    dependency:copy-dependencies -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
    svc_log "$name: Maven resolve failed; last lines of its output:"
    tail -n 25 "$tmp.mvn.log" >&2
    rm -rf "$tmp" "$tmp.mvn.log"
    return 1
  fi
  rm -f "$tmp.mvn.log"
  touch "$tmp/.complete"
  rm -rf "$lib"
  mv "$tmp" "$lib"
}

# tm_launch NAME CMD...: runs CMD in a new session (so its own process group) with stdout and
# stderr appended to $SVC_DIR/NAME/log, and writes the pid of CMD itself (the JVM, not a
# wrapper) to $SVC_DIR/NAME/pid.
tm_launch() {
  local name=$1 dir="$SVC_DIR/$1" i
  shift
  rm -f "$dir/pid"
  setsid nohup bash -c 'echo $$ >"$0.tmp" && mv "$0.tmp" "$0" && exec "$@"' "$dir/pid" "$@" \
    >>"$dir/log" 2>&1 </dev/null &
  for ((i = 0; i < 50; i++)); do
    if [[ -s $dir/pid ]]; then return 0; fi
    sleep 0.1
  done
  svc_log "$name: the launched process wrote no pid"
  return 1
}
