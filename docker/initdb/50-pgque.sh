#!/usr/bin/env bash
# Run by the postgres image's entrypoint once, when it initializes an empty
# data directory, as $POSTGRES_USER against the temporary server it starts:
# creates pgque in $POSTGRES_DB and, unless PGQUE_TICKER=none, schedules the
# ticker and maintenance with pg_cron.  The entrypoint may source this file
# instead of running it, so it defines a function and neither exits nor
# changes shell options.

pgque_initdb() {
    local db="${POSTGRES_DB:-${POSTGRES_USER:-postgres}}"
    local psql=(psql -q -v ON_ERROR_STOP=1 --no-psqlrc --no-password --username "${POSTGRES_USER:-postgres}")

    case "${PGQUE_TICKER:-pg_cron}" in
    pg_cron | none) ;;
    *)
        echo "pgque: PGQUE_TICKER must be pg_cron or none, not '$PGQUE_TICKER'" >&2
        return 1
        ;;
    esac

    "${psql[@]}" --dbname "$db" -c 'CREATE EXTENSION IF NOT EXISTS pgque' || return 1
    echo "pgque: extension created in database $db"
    if [ "${PGQUE_TICKER:-pg_cron}" = none ]; then
        echo "pgque: PGQUE_TICKER=none: no ticker scheduled; run 'pgque ticker' or the Go SDK's ticker"
        return 0
    fi

    # pg_cron lives in the postgres database (cron.database_name) and runs
    # the jobs in $db.  Schedules in seconds need pg_cron 1.5; an older one
    # rejects them (22023), and gets minute schedules and a warning instead.
    "${psql[@]}" --dbname postgres -v db="$db" <<'SQL' || return 1
CREATE EXTENSION IF NOT EXISTS pg_cron;
SET pgque.initdb_target = :'db';
DO $do$
DECLARE
    db      text := current_setting('pgque.initdb_target');
    ticker  text := '1 second';
    maint   text := '10 seconds';
BEGIN
    BEGIN
        PERFORM cron.schedule_in_database('pgque-ticker-' || db, ticker, 'SELECT pgque.ticker()', db);
    EXCEPTION WHEN invalid_parameter_value THEN
        ticker := '* * * * *';
        maint := '* * * * *';
        RAISE WARNING 'pgque: this pg_cron runs jobs at most once a minute, so messages are delivered up to a minute late; install pg_cron 1.5 or later, or run `pgque ticker`';
        PERFORM cron.schedule_in_database('pgque-ticker-' || db, ticker, 'SELECT pgque.ticker()', db);
    END;
    PERFORM cron.schedule_in_database('pgque-maint-' || db, maint, 'SELECT pgque.maint()', db);
    -- Every run adds a row to cron.job_run_details; keep a day of them.
    PERFORM cron.schedule('pgque-cron-history', '17 * * * *',
        $$DELETE FROM cron.job_run_details WHERE end_time < now() - interval '1 day'$$);
    RAISE NOTICE 'pgque: pg_cron runs pgque.ticker() on schedule ''%'' and pgque.maint() on ''%'' in database %',
        ticker, maint, db;
END
$do$;
SQL
}

pgque_initdb
