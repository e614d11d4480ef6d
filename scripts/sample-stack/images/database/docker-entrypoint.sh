#!/bin/bash
# Entrypoint of klink-sample/database.
#
# When the command is mariadbd and /var/lib/mysql is empty, initialise it:
# system tables, database $MYSQL_DATABASE, user $MYSQL_USER/$MYSQL_PASSWORD,
# root password $MYSQL_ROOT_PASSWORD, table `documents`. A temporary server
# does this on a private socket (so the healthcheck cannot see it), then shuts
# down cleanly. Finally exec the command: mariadbd becomes PID 1 and SIGTERM
# is a clean InnoDB shutdown.
#
# A non-empty datadir is used as it is: owners are NOT fixed up, so a restore
# that lost numeric owners fails loudly instead of being papered over.
set -Eeuo pipefail

datadir=/var/lib/mysql
log() { printf '[entrypoint] %s\n' "$*" >&2; }

sql_string() {  # 'quoted' SQL string literal
  local s=${1//\\/\\\\}
  s=${s//\'/\\\'}
  printf "'%s'" "$s"
}
sql_ident() {   # `quoted` SQL identifier
  printf '`%s`' "${1//\`/\`\`}"
}

init_pid=
abort_init() {  # bash as PID 1 ignores SIGTERM unless trapped: docker stop during init
  log "stop requested during initialisation: aborting it, emptying $datadir"
  if [ -n "$init_pid" ]; then kill -TERM "$init_pid" 2>/dev/null || true; wait "$init_pid" 2>/dev/null || true; fi
  find "$datadir" -mindepth 1 -delete || true
  exit 143
}

initialise() {
  : "${MYSQL_ROOT_PASSWORD:?MYSQL_ROOT_PASSWORD must be set to initialise the database}"
  : "${MYSQL_DATABASE:?MYSQL_DATABASE must be set to initialise the database}"
  : "${MYSQL_USER:?MYSQL_USER must be set to initialise the database}"
  : "${MYSQL_PASSWORD:?MYSQL_PASSWORD must be set to initialise the database}"

  log "empty $datadir: initialising"
  # a failed initialisation must not leave a half-made datadir behind
  trap 'log "initialisation failed; emptying $datadir"; find "$datadir" -mindepth 1 -delete || true' ERR
  trap abort_init TERM INT

  chown mysql:mysql "$datadir"
  mariadb-install-db --user=mysql --datadir="$datadir" --skip-test-db \
    --auth-root-authentication-method=normal >&2

  local sock=/run/mysqld/init.sock
  mariadbd --user=mysql --datadir="$datadir" --skip-networking --socket="$sock" \
    --pid-file=/run/mysqld/init.pid &
  init_pid=$!
  local pid=$init_pid
  local i
  for i in $(seq 1 120); do
    mariadb -uroot --socket="$sock" -e 'SELECT 1' >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { log "temporary server died"; exit 1; }
    sleep 0.5
  done
  mariadb -uroot --socket="$sock" -e 'SELECT 1' >/dev/null

  local rootpw db user userpw
  rootpw=$(sql_string "$MYSQL_ROOT_PASSWORD")
  db=$(sql_ident "$MYSQL_DATABASE")
  user=$(sql_string "$MYSQL_USER")
  userpw=$(sql_string "$MYSQL_PASSWORD")
  mariadb -uroot --socket="$sock" --binary-mode <<SQL
DROP USER IF EXISTS ''@'localhost';
DROP USER IF EXISTS ''@'$(hostname)';
DROP USER IF EXISTS 'root'@'$(hostname)';
ALTER USER 'root'@'localhost' IDENTIFIED BY $rootpw;
CREATE USER 'root'@'%' IDENTIFIED BY $rootpw;
GRANT ALL PRIVILEGES ON *.* TO 'root'@'%' WITH GRANT OPTION;
CREATE DATABASE $db CHARACTER SET utf8mb4;
CREATE USER $user@'%' IDENTIFIED BY $userpw;
GRANT ALL PRIVILEGES ON $db.* TO $user@'%';
CREATE TABLE $db.documents (
  id BIGINT AUTO_INCREMENT PRIMARY KEY,
  path VARCHAR(255) NOT NULL,
  size BIGINT NOT NULL,
  sha256 CHAR(64) NOT NULL,
  created_at DATETIME(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6)
) ENGINE=InnoDB;
FLUSH PRIVILEGES;
SQL

  kill -TERM "$pid"
  wait "$pid"
  init_pid=
  trap - ERR TERM INT
  log "initialisation done"
}

mkdir -p /run/mysqld
chown mysql:mysql /run/mysqld

if [ "${1:-}" = mariadbd ] || [ "${1:-}" = mysqld ]; then
  if [ -z "$(ls -A "$datadir" 2>/dev/null)" ]; then
    initialise
  fi
fi

exec "$@"
