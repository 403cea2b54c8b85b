# Shared by the scripts that compare OmenDB with PostgreSQL 15 (sourced, not
# run). Finds PostgreSQL 15's binaries, installing them from Debian's
# packages if they are missing (needs root), and starts a throwaway cluster.
#
#   . scripts/postgres-lib.sh
#   pg_find                                  # sets $pgbin; installs if needed
#   pg_start DIR PORT "-c setting=value ..." # initdb DIR/pgdata, start
#   pg_stop DIR                              # fast shutdown (safe to repeat)

pgbin=

pg_find() {
  for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
    if [ -x "$d/postgres" ]; then pgbin=$d; break; fi
  done
  if ! command -v pgbench >/dev/null || ! command -v psql >/dev/null || [ -z "$pgbin" ]; then
    echo "installing PostgreSQL 15 and its clients (apt)" >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 postgresql-client-15 >&2
    pgbin=/usr/lib/postgresql/15/bin
  fi
  echo "PostgreSQL: $("$pgbin/postgres" --version)" >&2
}

# PostgreSQL refuses to run as root.
as_pg() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_start() {
  local dir=$1 port=$2 settings=$3
  chmod 1777 "$dir"  # PostgreSQL runs as its own user: its log and socket go here
  mkdir -p "$dir/pgdata"
  chown postgres "$dir/pgdata" 2>/dev/null || true
  as_pg "$pgbin/initdb" -D "$dir/pgdata" -U postgres -A trust >/dev/null
  as_pg "$pgbin/pg_ctl" -D "$dir/pgdata" -l "$dir/pg.log" -w -o \
    "-p $port -k $dir -c listen_addresses=127.0.0.1 $settings" start >/dev/null
}

pg_stop() {
  [ -d "$1/pgdata" ] && as_pg "$pgbin/pg_ctl" -D "$1/pgdata" -m fast stop >/dev/null 2>&1 || true
}
