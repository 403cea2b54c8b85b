#!/usr/bin/env bash
# The real PostgreSQL clients the server tests drive (tests/omendb/clients.rs):
# psql from Debian's postgresql-client package (installed with apt if
# missing; needs root) and, in a virtualenv (pip, pinned), psycopg 3,
# psycopg2, asyncpg and SQLAlchemy 2 with its asyncio extra; pgJDBC and a
# JDK (apt). Prints three lines: the psql path, the venv's python, the
# pgJDBC jar.
#
#   scripts/client-tools.sh
set -euo pipefail
root=${OMENDB_CLIENTS_DIR:-$HOME/.cache/omendb-clients}
# pgJDBC and a JDK to compile its test client, from Debian's packages.
jdbc=/usr/share/java/postgresql.jar
if ! command -v psql >/dev/null || ! command -v javac >/dev/null || [ ! -f "$jdbc" ]; then
  echo "installing psql, a JDK and pgJDBC (apt-get install postgresql-client default-jdk-headless libpostgresql-jdbc-java)" >&2
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-client default-jdk-headless \
    libpostgresql-jdbc-java >&2
fi
venv=$root/venv
if ! "$venv/bin/python" -c 'import psycopg, psycopg2, asyncpg, sqlalchemy, greenlet' 2>/dev/null; then
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv" >&2
  "$venv/bin/pip" install --quiet "psycopg[binary]==3.2.13" "psycopg2-binary==2.9.13" "asyncpg==0.32.0" \
    "sqlalchemy[asyncio]==2.1.9" >&2
fi
command -v psql
echo "$venv/bin/python"
echo "$jdbc"
