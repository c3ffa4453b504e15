#!/bin/sh
# Like the official postgres image: on an empty PGDATA, create the cluster with
# POSTGRES_USER/POSTGRES_PASSWORD (password auth over TCP, trust on the local
# socket) and the database POSTGRES_DB, then serve on every interface.
set -eu
: "${POSTGRES_PASSWORD:?the postgres stand-in needs POSTGRES_PASSWORD}"
POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}
as_postgres() { setpriv --reuid=postgres --regid=postgres --init-groups -- "$@"; }

if [ "$1" = postgres ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        password_file=$(mktemp)
        printf '%s\n' "$POSTGRES_PASSWORD" > "$password_file"
        chown postgres "$password_file"
        as_postgres initdb --username="$POSTGRES_USER" --pwfile="$password_file" \
            --auth-local=trust --auth-host=scram-sha-256 >/dev/null
        rm -f "$password_file"
        echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
        if [ "$POSTGRES_DB" != postgres ]; then
            # A server on the socket only, as the official image does during
            # its set-up, so no client sees a half-made database.
            as_postgres pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
            as_postgres psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres \
                -c "CREATE DATABASE \"$POSTGRES_DB\"" >/dev/null
            as_postgres pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
        fi
    fi
    shift
    exec setpriv --reuid=postgres --regid=postgres --init-groups -- \
        postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
