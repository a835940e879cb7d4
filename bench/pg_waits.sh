#!/usr/bin/env bash
# Where PostgreSQL's sessions of the store spend their time during a benchmark: samples
# pg_stat_activity every INTERVAL_MS (100) for SECONDS (8) from one psql session (a PL/pgSQL loop,
# so sampling costs one backend, not a process per sample), then prints how many samples found
# the store's connections (application_name 'airisk') in each state and wait event.
#
#   AIRISK_BENCH_DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres \
#     SECONDS_TO_SAMPLE=8 bash bench/pg_waits.sh &     # then start the benchmark
#
# `active` with no wait event is a backend on the CPU; `idle` is a connection waiting for its
# client's next statement outside a transaction, `idle in transaction` inside one (the client is
# computing, or the round trip is in flight); `Lock:transactionid`/`Lock:tuple` is a row lock
# wait (the tenant's head); `IO:WALSync`/`IO:WALWrite`, `LWLock:WALWrite` are commit flushes;
# `IPC:SyncRep` waits for a synchronous standby.
set -euo pipefail
url=${AIRISK_BENCH_DATABASE_URL:?set AIRISK_BENCH_DATABASE_URL to a superuser URL}
seconds=${SECONDS_TO_SAMPLE:-8}
interval_ms=${INTERVAL_MS:-100}
psql -X -q "$url" <<SQL
CREATE TEMP TABLE airisk_wait_samples (state text, wait text, query text);
DO \$\$
DECLARE
    deadline timestamptz := clock_timestamp() + make_interval(secs => $seconds);
BEGIN
    WHILE clock_timestamp() < deadline LOOP
        PERFORM pg_stat_clear_snapshot();
        INSERT INTO airisk_wait_samples
        SELECT state,
               coalesce(wait_event_type || ':' || wait_event, '-'),
               left(regexp_replace(query, '\s+', ' ', 'g'), 60)
        FROM pg_stat_activity
        WHERE application_name = 'airisk' AND pid <> pg_backend_pid();
        PERFORM pg_sleep($interval_ms / 1000.0);
    END LOOP;
END
\$\$;
\echo == samples by state and wait event
SELECT state, wait, count(*) AS samples,
       round(100.0 * count(*) / sum(count(*)) OVER (), 1) AS pct
FROM airisk_wait_samples GROUP BY 1, 2 ORDER BY 3 DESC;
\echo == active or in transaction, by statement
SELECT state, wait, query, count(*) AS samples
FROM airisk_wait_samples WHERE state <> 'idle' GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 15;
SQL
