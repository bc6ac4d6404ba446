-- Roles and privileges.  PUBLIC gets nothing; everything goes through the
-- SECURITY DEFINER API functions, each with a pinned search_path.
--
-- The caller's search_path reaches nothing (a schema of the caller's before
-- pg_catalog could otherwise shadow a type, function or operator with code
-- that then runs with the caller's, maybe a superuser's, rights):
--   * definer functions pin search_path = pg_catalog, pgque, pg_temp;
--   * internal functions (pgque._*) may be called by no role, so they run
--     only inside definer functions, under the pinned search_path;
--   * the SQL wrappers (the jsonb forms, PgQ's names, version) pin nothing,
--     so that they are inlined: they are parsed under the caller's
--     search_path, so they name only pgque functions and pg_catalog types
--     (payload::pg_catalog.text) and use no operator;
--   * SQL handed to clients to run (receive_query) qualifies its functions,
--     types and operators (OPERATOR(pg_catalog.=)).
-- pg_tests/sql/20_roles.sql checks all of it, and calls every function
-- under a search_path that shadows pg_catalog with traps.
--   pgque_writer  produce
--   pgque_reader  consume (subscribe, receive, ack, nack, peek, PgQ batch calls); it
--                 may also read the event tables (SELECT, granted by
--                 create_queue), which receive_query() hands pieces out for
--   pgque_admin   both, plus queue management, ticker, maintenance, dead letters,
--                 schedules, leader leases (18_leader.sql)
--   pgque_tenant  may call every function that works on named queues; what
--                 it may do to which queues is granted per namespace or queue
--                 with grant_access() (17_namespace.sql)
-- All three global roles may read the info functions (list_schedules among them).

DO $$
DECLARE
    r text;
BEGIN
    FOREACH r IN ARRAY ARRAY['pgque_reader', 'pgque_writer', 'pgque_admin', 'pgque_tenant'] LOOP
        IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
            BEGIN
                EXECUTE format('CREATE ROLE %I NOLOGIN', r);
            EXCEPTION WHEN duplicate_object OR unique_violation THEN
                NULL;  -- roles are cluster-wide: an install into another database made it meanwhile
            END;
        END IF;
    END LOOP;
END
$$;
GRANT pgque_reader, pgque_writer TO pgque_admin;

REVOKE ALL ON SCHEMA pgque FROM PUBLIC;
GRANT USAGE ON SCHEMA pgque TO pgque_reader, pgque_writer, pgque_admin, pgque_tenant;
-- receive_query's clients read the cancellation store with the event tables.
GRANT SELECT ON pgque.cancelled TO pgque_reader;
REVOKE ALL ON ALL TABLES IN SCHEMA pgque FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA pgque FROM PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA pgque FROM PUBLIC;

GRANT EXECUTE ON FUNCTION
    pgque.version(),
    pgque.engine_id(),
    pgque.get_queue_info(text, text),
    pgque.get_unclaimed_info(),
    pgque.get_consumer_info(text, text, text),
    pgque.get_batch_info(bigint),
    pgque.get_table_info(),
    pgque.get_worker_info(text, text),
    pgque.list_schedules(text, text)
TO pgque_reader, pgque_writer;

GRANT EXECUTE ON FUNCTION
    pgque.send(text, text, text, text, text, text, text),
    pgque.send(text, text, jsonb, text, text, text, text),
    pgque.send_batch(text, text, text[]),
    pgque.send_batch(text, text, jsonb[]),
    pgque.insert_event(text, text, text, text, text, text, text),
    pgque.send_opts(text, text, text, timestamptz, text, interval, int, text, text, text, text),
    pgque.send_opts(text, text, jsonb, timestamptz, text, interval, int, text, text, text, text),
    pgque.send_at(text, text, text, timestamptz, text, text, text, text),
    pgque.send_at(text, text, jsonb, timestamptz, text, text, text, text),
    pgque.send_unique(text, text, text, text, interval),
    pgque.send_unique(text, text, jsonb, text, interval),
    pgque.cancel_scheduled(text, bigint),
    pgque.cancel(text, bigint, text)
TO pgque_writer;

GRANT EXECUTE ON FUNCTION
    pgque.subscribe(text, text),
    pgque.unsubscribe(text, text),
    pgque.register_consumer(text, text),
    pgque.unregister_consumer(text, text),
    pgque.receive(text, text, int, text, interval),
    pgque.receive_query(text, text, int, text, interval),
    pgque.heartbeat(bigint, interval),
    pgque.cancelled_messages(bigint),
    pgque.unregister_worker(text, text, text, boolean),
    pgque.peek(text, text, int),
    pgque.find_events(text, text, boolean, int),
    pgque.message_status(text, bigint),
    pgque.list_messages(text, text, text, int, bigint, text, timestamptz, timestamptz),
    pgque.ack(bigint),
    pgque.nack(bigint, bigint, interval, text),
    pgque.snooze(bigint, bigint, interval),
    pgque.reject(bigint, bigint, text),
    pgque.cancel_message(bigint, bigint),
    pgque.next_batch_info(text, text),
    pgque.next_batch(text, text),
    pgque.get_batch_events(bigint),
    pgque.finish_batch(bigint),
    pgque.event_retry(bigint, bigint, timestamptz),
    pgque.event_retry(bigint, bigint, int)
TO pgque_reader;

GRANT EXECUTE ON FUNCTION
    pgque.create_queue(text, boolean),
    pgque.drop_queue(text, boolean),
    pgque.set_queue_config(text, text, text),
    pgque.pause_queue(text),
    pgque.resume_queue(text),
    pgque.ticker(text),
    pgque.ticker(),
    pgque.force_tick(text),
    pgque.maint(),
    pgque.maint_rotate_tables_step1(text),
    pgque.maint_rotate_tables_step2(),
    pgque.maint_rotate_logs(interval),
    pgque.maint_retry_events(),
    pgque.maint_delayed_events(),
    pgque.maint_rotate_delayed(interval),
    pgque.maint_rotate_dedup(interval),
    pgque.dlq_list(text, int),
    pgque.dlq_replay(bigint),
    pgque.dlq_purge(text, interval),
    pgque.create_schedule(text, text, text, text, interval, text, timestamptz),
    pgque.create_schedule(text, text, text, jsonb, interval, text, timestamptz),
    pgque.create_schedule(text, text, text, text, text, text),
    pgque.create_schedule(text, text, text, jsonb, text, text),
    pgque.drop_schedule(text, boolean, text),
    pgque.grant_access(name, text, text, text),
    pgque.revoke_access(name, text, text, text),
    pgque.list_access(),
    pgque.leader_lease(text, text, interval),
    pgque.leader_release(text, text),
    pgque.leader_info(text)
TO pgque_admin;

-- Tenants: the functions on named queues (each checks the queue's
-- namespace and grants), not the database-wide ones.
DO $$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p
              WHERE p.pronamespace = 'pgque'::regnamespace AND p.proname !~ '^_'
                AND has_function_privilege('pgque_admin', p.oid, 'EXECUTE')
                AND p.proname !~ '^maint'
                AND p.proname NOT IN ('get_table_info', 'grant_access', 'revoke_access', 'list_access',
                                       'leader_lease', 'leader_release', 'leader_info')
                AND p.oid::regprocedure <> 'pgque.ticker()'::regprocedure
    LOOP
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO pgque_tenant', f);
    END LOOP;
END
$$;

