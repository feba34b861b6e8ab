#!/bin/bash
# What a claimed marker in the queue table would give (issue 13's last target; not built: it changes the schema
# every Janitor service shares). Measures, on a private PostgreSQL over 100,000 items seeded by `load seed`,
# with 1,000 claimed items at the head of the queue:
#   none   - the selection with nothing claimed;
#   ids    - today's selection: the claimed ids sent and tested with a hashed NOT IN;
#   marker - a `claimed` column with a partial index (bucket, priority, id) WHERE NOT claimed;
#   write  - what the marker costs: the claim's UPDATE and the release's UPDATE of one item.
# Each is a pgbench run (one client, prepared, ${T:-10} s); subtract `base` (SELECT 1) for the server's time.
# Usage: benches/claimed-marker.sh   (as root or as postgres; PORT defaults to 5499, loopback only; HARNESS
# defaults to target/release/janitor-harness: cargo build --release -p janitor-harness)
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-5499}
HARNESS=${HARNESS:-target/release/janitor-harness}
[ -x "$HARNESS" ] || { echo "no $HARNESS: build it first" >&2; exit 1; }
PGBIN=$(ls -d /usr/lib/postgresql/*/bin | tail -1)
as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
DIR=$(mktemp -d /dev/shm/claimed-marker.XXXXXX 2>/dev/null || mktemp -d)
chmod 755 "$DIR"
[ "$(id -u)" = 0 ] && chown postgres "$DIR"
# Only the server started here is stopped, through its own data directory.
trap 'as_pg "$PGBIN/pg_ctl" -D "$DIR/data" stop -m fast >/dev/null 2>&1 || true; rm -rf "$DIR"' EXIT
as_pg "$PGBIN/initdb" -A trust -U postgres -D "$DIR/data" >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$DIR/data" -l "$DIR/log" -w start \
  -o "-p $PORT -k $DIR -c listen_addresses=127.0.0.1 -c shared_buffers=256MB" >/dev/null
P="psql -h 127.0.0.1 -p $PORT -U postgres -v ON_ERROR_STOP=1 -qAt"
$P -c "CREATE DATABASE proto"
P="$P -d proto"
for f in migrations/*.sql; do $P -f "$f" >/dev/null; done
# The load tool's own seeding, so the queue is the one the load figures use.
"$HARNESS" load seed --db "postgres://postgres@127.0.0.1:$PORT/proto" --items 100000 --campaign lintian-fixes
COLS="queue.id, queue.command, queue.context, queue.estimated_duration, queue.suite::text, queue.refresh, \
queue.requester, queue.change_set, queue.codebase, codebase.vcs_type::text, codebase.branch_url, \
codebase.subpath FROM queue LEFT JOIN codebase ON codebase.name = queue.codebase"
ORD="ORDER BY queue.bucket ASC, queue.priority ASC, queue.id ASC LIMIT 1"
IDS=$($P -c "SELECT string_agg(id::text, ',') FROM (SELECT id FROM queue ORDER BY bucket, priority, id LIMIT 1000) s")
$P -c "ALTER TABLE queue ADD COLUMN claimed boolean NOT NULL DEFAULT false"
$P -c "CREATE INDEX queue_unclaimed ON queue (bucket, priority, id) WHERE NOT claimed"
$P -c "UPDATE queue SET claimed = true WHERE id IN ($IDS)"
$P -c "VACUUM ANALYZE"
echo "SELECT 1;" > "$DIR/base.sql"
echo "SELECT $COLS $ORD;" > "$DIR/none.sql"
echo "SELECT $COLS WHERE queue.id NOT IN (SELECT unnest('{$IDS}'::int[])) $ORD;" > "$DIR/ids.sql"
echo "SELECT $COLS WHERE NOT queue.claimed $ORD;" > "$DIR/marker.sql"
# A random unclaimed item, claimed then released; found through the unique index as the runner finds an item:
# the schema has no index on queue.id. The claimed head stays as it is.
$P -c "CREATE TABLE unclaimed AS SELECT row_number() OVER () AS n, codebase FROM queue WHERE NOT claimed"
$P -c "CREATE UNIQUE INDEX ON unclaimed (n); ANALYZE unclaimed"
cat > "$DIR/write.sql" <<'SQL'
\set n random(1, 99000)
UPDATE queue SET claimed = true WHERE codebase = (SELECT codebase FROM unclaimed WHERE n = :n) AND suite = 'lintian-fixes' AND coalesce(change_set, '') = '';
UPDATE queue SET claimed = false WHERE codebase = (SELECT codebase FROM unclaimed WHERE n = :n) AND suite = 'lintian-fixes' AND coalesce(change_set, '') = '';
SQL
a=$($P -c "$(sed 's/;$//' "$DIR/ids.sql")" | cut -d'|' -f1)
b=$($P -c "$(sed 's/;$//' "$DIR/marker.sql")" | cut -d'|' -f1)
[ "$a" = "$b" ] || { echo "the two selections disagree: $a against $b" >&2; exit 1; }
echo "both selections answer item $a"
for s in base none ids marker write; do
  printf '%-7s ' $s
  pgbench -h 127.0.0.1 -p $PORT -U postgres -n -M prepared -c 1 -T "${T:-10}" -f "$DIR/$s.sql" proto 2>&1 \
    | grep -E "latency average"
done
left=$($P -c "SELECT count(*) FROM queue WHERE claimed")
[ "$left" = 1000 ] || { echo "the claimed head changed: $left claimed" >&2; exit 1; }
