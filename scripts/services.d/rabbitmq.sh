# scripts/services.d/rabbitmq.sh — RabbitMQ on 127.0.0.1:5672 (sourced by scripts/services).
#
# Debian's rabbitmq-server, run directly as root (/usr/lib/rabbitmq/bin/rabbitmq-server; the
# /usr/sbin wrapper switches user) with HOME, mnesia, logs and config under $SVC_DIR/rabbitmq.
# Node rabbit@localhost, user guest/guest (loopback only), no plugins (fast start).
# If no epmd is running we start our own on 127.0.0.1:4369 and `down` stops it again.

rabbitmq_timeout=240

rabbitmq_install() {
  svc_apt_install rabbitmq-server
}

_rabbitmq_d() { echo "$SVC_DIR/rabbitmq"; }

_rabbitmq_vars() {
  local d
  d=$(_rabbitmq_d)
  export HOME="$d/home"
  export RABBITMQ_MNESIA_BASE="$d/mnesia"
  export RABBITMQ_LOG_BASE="$d/logs"
  export RABBITMQ_NODENAME=rabbit@localhost
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT=5672
  export RABBITMQ_CONF_ENV_FILE="$d/rabbitmq-env.conf"
  export RABBITMQ_CONFIG_FILE="$d/rabbitmq.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$d/enabled_plugins"
  export RABBITMQ_PID_FILE="$d/rabbitmq.pid"
  export ERL_EPMD_ADDRESS=127.0.0.1
  export ERL_EPMD_PORT=4369
}

_rabbitmq_epmd_bin() {
  command -v epmd 2>/dev/null || ls /usr/lib/erlang/erts-*/bin/epmd 2>/dev/null | head -n 1
}

# A system rabbitmq (auto-started by apt) holds port 5672: stop it.
_rabbitmq_stop_system() {
  local f pid
  for f in /var/lib/rabbitmq/mnesia/rabbit@*.pid /run/rabbitmq/pid /var/run/rabbitmq/pid; do
    [[ -s $f ]] || continue
    pid=$(tr -dc '0-9' <"$f")
    if svc_alive "$pid"; then
      svc_log "rabbitmq: stopping the system rabbitmq (pid $pid)"
      svc_kill_tree "$pid" 60
    fi
  done
  return 0
}

rabbitmq_start() {
  local d epmd i pid
  d=$(_rabbitmq_d)
  _rabbitmq_vars
  mkdir -p "$HOME" "$RABBITMQ_MNESIA_BASE" "$RABBITMQ_LOG_BASE"
  _rabbitmq_stop_system
  if svc_port_open 5672; then
    svc_log "rabbitmq: port 5672 is already in use by a process we did not start"
    return 1
  fi
  : >"$RABBITMQ_CONF_ENV_FILE"
  echo '[].' >"$RABBITMQ_ENABLED_PLUGINS_FILE"
  cat >"$RABBITMQ_CONFIG_FILE" <<'EOF'
# written by scripts/services.d/rabbitmq.sh
log.console = true
log.console.level = info
log.file = false
disk_free_limit.absolute = 50MB
EOF
  # epmd: start our own (and remember it) unless one is already serving
  rm -f "$d/epmd.pid"
  if ! svc_port_open 4369; then
    epmd=$(_rabbitmq_epmd_bin)
    [[ -n $epmd ]] || { svc_log "rabbitmq: epmd not found"; return 1; }
    setsid "$epmd" -address 127.0.0.1 -port 4369 </dev/null >>"$d/epmd.log" 2>&1 &
    echo $! >"$d/epmd.pid"
    for ((i = 0; i < 50; i++)); do svc_port_open 4369 && break; sleep 0.1; done
  fi
  setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >>"$d/log" 2>&1 &
  pid=$!
  echo "$pid" >"$d/pid"
}

# Ready when the AMQP listener answers a protocol header with a Connection.Start frame.
rabbitmq_healthy() {
  local first
  first=$(timeout 3 bash -c 'exec 3<>/dev/tcp/127.0.0.1/5672 && printf "AMQP\x00\x00\x09\x01" >&3 && head -c 1 <&3' 2>/dev/null | od -An -tx1 | tr -d ' \n')
  [[ $first == 01 ]]
}

rabbitmq_stop() {
  local d pid
  d=$(_rabbitmq_d)
  pid=$(svc_pid rabbitmq)
  [[ -n $pid ]] && svc_kill_tree "$pid" 60
  if [[ -s $d/epmd.pid ]]; then
    svc_kill_tree "$(tr -dc '0-9' <"$d/epmd.pid")" 10
    rm -f "$d/epmd.pid"
  fi
  return 0
}

rabbitmq_env() {
  echo 'export TIDEMARK_AMQP_URL=amqp://guest:guest@127.0.0.1:5672/'
}
