#!/bin/sh
# Entry point of the locally built test images (ci/containers.sh). For the
# two commands the harness runs it behaves like the official images'
# docker-entrypoint.sh, so the same container command works with either:
#   postgres ARGS…      initdb on first start (trust authentication, user
#                       postgres, UTF8, locale C), then the server, as postgres;
#   redis-server ARGS…  the server, as redis.
# Anything else is run as given.
set -eu
case "${1:-}" in
postgres)
    shift
    : "${PGDATA:=/var/lib/postgresql/data}"
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    if [ ! -s "$PGDATA/PG_VERSION" ]; then
        setpriv --reuid=postgres --regid=postgres --init-groups \
            "$bindir/initdb" -D "$PGDATA" -U postgres -A trust -E UTF8 --locale=C --no-sync >/dev/null
    fi
    exec setpriv --reuid=postgres --regid=postgres --init-groups "$bindir/postgres" -D "$PGDATA" "$@"
    ;;
redis-server)
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
    ;;
esac
exec "$@"
