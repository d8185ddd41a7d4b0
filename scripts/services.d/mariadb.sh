# scripts/services.d/mariadb.sh — MariaDB with a ROW/FULL binlog for CDC tests (sourced by scripts/services).
#
# Debian's mariadb-server, run as our own mariadbd on 127.0.0.1:3306 with its data, socket and
# config under $SVC_DIR/mariadb. User tidemark/tidemark has ALL on tidemark.* and `tidemark\_%`.*
# (per-test databases) plus the global grants binlog CDC (go-mysql canal, incl. mysqldump) needs.
# Also installs sysbench and kcat, which other tests use.

mariadb_timeout=120

mariadb_install() {
  svc_apt_install mariadb-server mariadb-client sysbench kcat
}

_mariadb_d() { echo "$SVC_DIR/mariadb"; }

# A system mariadbd (auto-started by apt or an init script) holds port 3306: stop it.
_mariadb_stop_system() {
  local f pid
  for f in /run/mysqld/mysqld.pid /var/run/mysqld/mysqld.pid; do
    [[ -s $f ]] || continue
    pid=$(tr -dc '0-9' <"$f")
    if svc_alive "$pid"; then
      svc_log "mariadb: stopping the system mariadbd (pid $pid) that holds port 3306"
      svc_kill_tree "$pid" 60
    fi
  done
  return 0
}

_mariadb_write_cnf() {
  local d
  d=$(_mariadb_d)
  cat >"$d/my.cnf" <<EOF
# written by scripts/services.d/mariadb.sh
[mysqld]
datadir=$d/data
socket=$d/mysqld.sock
pid-file=$d/mysqld.pid
tmpdir=$d/tmp
port=3306
bind-address=127.0.0.1
skip-name-resolve
log_bin=binlog
binlog_format=ROW
binlog_row_image=FULL
server_id=1
expire_logs_days=3
character-set-server=utf8mb4
collation-server=utf8mb4_general_ci
max_connections=500
innodb_buffer_pool_size=256M
innodb_flush_log_at_trx_commit=2
sync_binlog=0
EOF
}

mariadb_start() {
  local d i pid
  d=$(_mariadb_d)
  mkdir -p "$d/tmp"
  _mariadb_stop_system
  if svc_port_open 3306; then
    svc_log "mariadb: port 3306 is already in use by a process we did not start"
    return 1
  fi
  _mariadb_write_cnf
  if [[ ! -d $d/data/mysql ]]; then
    rm -rf "$d/data"
    svc_log "mariadb: initializing $d/data"
    mariadb-install-db --defaults-file="$d/my.cnf" --user=root \
      --auth-root-authentication-method=normal --skip-test-db >"$d/install-db.log" 2>&1 ||
      { cat "$d/install-db.log"; return 1; }
  fi
  setsid mariadbd --defaults-file="$d/my.cnf" --user=root </dev/null >>"$d/log" 2>&1 &
  pid=$!
  echo "$pid" >"$d/pid"
  # wait for the socket, then create the user and database (idempotent)
  for ((i = 0; i < 240; i++)); do
    mariadb-admin --no-defaults -S "$d/mysqld.sock" -uroot ping >/dev/null 2>&1 && break
    svc_alive "$pid" || { svc_log "mariadb: mariadbd exited"; return 1; }
    sleep 0.5
  done
  _mariadb_grants
}

# The user, the database and the grants, idempotently: run at every start and, for a server
# already up, by `scripts/services up` (mariadb_refresh), so a grant added here reaches a
# server installed or started before it. BINLOG ADMIN lets tests write behind the CDC's back
# with SET SESSION sql_log_bin=0.
_mariadb_grants() {
  mariadb --no-defaults -S "$(_mariadb_d)/mysqld.sock" -uroot <<'SQL'
CREATE DATABASE IF NOT EXISTS tidemark CHARACTER SET utf8mb4;
CREATE USER IF NOT EXISTS 'tidemark'@'%' IDENTIFIED BY 'tidemark';
CREATE USER IF NOT EXISTS 'tidemark'@'localhost' IDENTIFIED BY 'tidemark';
GRANT ALL PRIVILEGES ON `tidemark`.* TO 'tidemark'@'%', 'tidemark'@'localhost';
GRANT ALL PRIVILEGES ON `tidemark\_%`.* TO 'tidemark'@'%', 'tidemark'@'localhost';
GRANT SELECT, RELOAD, PROCESS, LOCK TABLES, SHOW VIEW, EVENT, TRIGGER,
      REPLICATION SLAVE, REPLICATION CLIENT, BINLOG MONITOR, BINLOG ADMIN
  ON *.* TO 'tidemark'@'%', 'tidemark'@'localhost';
FLUSH PRIVILEGES;
SQL
}

mariadb_refresh() { _mariadb_grants; }

mariadb_healthy() {
  mariadb --no-defaults --protocol=tcp -h127.0.0.1 -P3306 -utidemark -ptidemark \
    --connect-timeout=2 -e 'SELECT 1' tidemark >/dev/null 2>&1
}

mariadb_env() {
  cat <<'EOF'
export TIDEMARK_MYSQL_ADDR=127.0.0.1:3306
export TIDEMARK_MYSQL_USER=tidemark
export TIDEMARK_MYSQL_PASSWORD=tidemark
export TIDEMARK_MYSQL_DB=tidemark
export TIDEMARK_MYSQL_FLAVOR=mariadb
EOF
}
