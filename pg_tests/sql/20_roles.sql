-- 20_roles: roles and tenants.
--   1. grants follow PostgreSQL's role lifecycle: a dropped role's grants
--      match nobody and break nobody, a new role of the same name gets
--      nothing, a renamed role keeps them, maint() deletes them;
--   2. schedule names are per namespace: another tenant's look unknown;
--   3. invalid namespace filters and revoke_access arguments are PQ006;
--   4. no function runs code found through the caller's search_path: every
--      function is audited in pg_proc, then every public one is called
--      under a search_path whose first schema shadows pg_catalog's types,
--      functions, operators and aggregates with traps.
-- Tenants are switched to with SET SESSION AUTHORIZATION (pgque checks the
-- login role).  Queues of this file are named q20* or <ns>20.*.

CREATE ROLE t20_acme;
CREATE ROLE t20_globex;
CREATE ROLE t20_tmp;
GRANT pgque_tenant TO t20_acme, t20_globex, t20_tmp;
GRANT USAGE ON SCHEMA test TO t20_acme, t20_globex, t20_tmp;
SELECT pgque.create_queue('acme20.orders'), pgque.create_queue('globex20.jobs'), pgque.create_queue('tmp20.q'),
       pgque.create_queue('q20_plain'), pgque.create_queue('q20_plain2');
SELECT pgque.grant_access('t20_acme', 'admin', namespace => 'acme20'),
       pgque.grant_access('t20_globex', 'admin', namespace => 'globex20'),
       pgque.grant_access('t20_tmp', 'send', namespace => 'tmp20'),
       pgque.grant_access('t20_tmp', 'receive', queue_name => 'acme20.orders');
SELECT * FROM pgque.list_access() WHERE role_name LIKE 't20%';

---------------------------------------------------------------------------
-- 1. Grants follow the role.
---------------------------------------------------------------------------
SELECT count(*) AS grants_before_drop FROM pgque.acl \gset
REVOKE USAGE ON SCHEMA test FROM t20_tmp;
DROP ROLE t20_tmp;
-- the other tenants do not notice (they used to get 42704 role does not exist)
SET SESSION AUTHORIZATION t20_acme;
SELECT queue_name FROM pgque.get_queue_info() ORDER BY 1;
SELECT count(*) AS schedules FROM pgque.list_schedules();
SELECT pgque.send('acme20.orders', 't', 'a1') IS NOT NULL AS sent;
SELECT queue_name, consumer_name FROM pgque.get_consumer_info();
RESET SESSION AUTHORIZATION;
-- listed grants are the live roles' only
SELECT * FROM pgque.list_access() WHERE role_name LIKE 't20%';
-- a new role of the old name has nothing
CREATE ROLE t20_tmp;
GRANT pgque_tenant TO t20_tmp;
GRANT USAGE ON SCHEMA test TO t20_tmp;
SET SESSION AUTHORIZATION t20_tmp;
SELECT test.err($$SELECT pgque.send('tmp20.q', 't', 'x')$$) AS send_by_namesake;
SELECT test.err($$SELECT * FROM pgque.receive('acme20.orders', 'c', 10)$$) AS receive_by_namesake;
SELECT count(*) AS namesake_sees FROM pgque.get_queue_info();
RESET SESSION AUTHORIZATION;
-- maint() deletes the dropped role's two grants
SELECT pgque.maint() >= 2 AS maint_ran;
SELECT :grants_before_drop - count(*) AS grants_deleted FROM pgque.acl;
-- a renamed role keeps its grants, under its new name
ALTER ROLE t20_globex RENAME TO t20_globex_renamed;
SELECT * FROM pgque.list_access() WHERE role_name LIKE 't20%';
SET SESSION AUTHORIZATION t20_globex_renamed;
SELECT queue_name FROM pgque.get_queue_info();
RESET SESSION AUTHORIZATION;
ALTER ROLE t20_globex_renamed RENAME TO t20_globex;

---------------------------------------------------------------------------
-- 2. Schedule names are per namespace.
---------------------------------------------------------------------------
SET SESSION AUTHORIZATION t20_acme;
SELECT pgque.create_schedule('nightly', 'acme20.orders', 't', 'a', cron => '0 3 * * *') IS NOT NULL AS acme_nightly;
SELECT pgque.create_schedule('acme-only', 'acme20.orders', 't', 'a', every => '1 hour') IS NOT NULL AS acme_only;
RESET SESSION AUTHORIZATION;
SET SESSION AUTHORIZATION t20_globex;
-- acme's names are free for globex, and acme's schedules look unknown
SELECT pgque.create_schedule('nightly', 'globex20.jobs', 't', 'g', cron => '0 4 * * *') IS NOT NULL AS globex_nightly;
SELECT test.err($$SELECT pgque.create_schedule('nightly', 'globex20.jobs', 't', 'g', every => '1 day')$$) AS again;
SELECT schedule_name, queue FROM pgque.list_schedules();
SELECT test.err($$SELECT pgque.drop_schedule('acme-only')$$) AS drop_acme_only;
SELECT pgque.drop_schedule('acme-only', true) AS drop_acme_only_if_exists;
SELECT test.err($$SELECT pgque.drop_schedule('nightly', false, 'acme20.orders')$$) AS drop_naming_acme_queue;
RESET SESSION AUTHORIZATION;
-- queues without a namespace share one scope: names are unique there, as ever
SELECT pgque.create_schedule('plain', 'q20_plain', 't', 'p', every => '1 hour') IS NOT NULL AS plain;
SELECT test.err($$SELECT pgque.create_schedule('plain', 'q20_plain2', 't', 'p', every => '1 hour')$$) AS plain_again;
SELECT test.err($$SELECT pgque.create_schedule('nightly', 'acme20.orders', 't', 'p', every => '1 hour')$$) AS acme_again;
-- a session that administers both namespaces sees both, and says which it drops
SELECT schedule_name, queue FROM pgque.list_schedules() WHERE schedule_name = 'nightly';
SELECT test.err($$SELECT pgque.drop_schedule('nightly')$$) AS drop_ambiguous;
SELECT test.err($$SELECT pgque.drop_schedule('nightly', false, 'nope20.q')$$) AS drop_on_unknown_queue;
SELECT test.err($$SELECT pgque.drop_schedule('nightly', false, 'q20_plain')$$) AS drop_on_other_queue;
SELECT pgque.drop_schedule('nightly', false, 'acme20.orders') AS dropped_acme;
SET SESSION AUTHORIZATION t20_globex;
SELECT pgque.drop_schedule('nightly') AS dropped_globex;
RESET SESSION AUTHORIZATION;
SELECT pgque.drop_schedule('acme-only'), pgque.drop_schedule('plain');

---------------------------------------------------------------------------
-- 3. Invalid filters and revoke_access arguments are PQ006.
---------------------------------------------------------------------------
SELECT test.err($$SELECT * FROM pgque.get_queue_info(namespace => 'acme20.orders')$$) AS queue_info_dotted;
SELECT test.err($$SELECT * FROM pgque.get_queue_info(namespace => '')$$) AS queue_info_empty;
SELECT test.err($$SELECT * FROM pgque.get_consumer_info(namespace => 'bad name')$$) AS consumer_info_bad;
SELECT test.err($$SELECT * FROM pgque.list_schedules(namespace => 'a.b')$$) AS schedules_dotted;
-- a valid namespace without queues is just empty
SELECT count(*) AS none FROM pgque.get_queue_info(namespace => 'nobody20');
SELECT count(*) AS none FROM pgque.list_schedules(namespace => 'nobody20');
SELECT test.err($$SELECT pgque.revoke_access('t20_nobody', 'send', namespace => 'acme20')$$) AS revoke_unknown_role;
SELECT test.err($$SELECT pgque.revoke_access('t20_acme', 'write', namespace => 'acme20')$$) AS revoke_bad_privilege;
SELECT test.err($$SELECT pgque.revoke_access('t20_acme', NULL, namespace => 'acme20')$$) AS revoke_null_privilege;
SELECT test.err($$SELECT pgque.revoke_access('t20_acme', 'send', namespace => 'a.b')$$) AS revoke_bad_namespace;
SELECT pgque.revoke_access('t20_acme', 'send', namespace => 'acme20') AS revoke_not_granted;

---------------------------------------------------------------------------
-- 4a. Every function is safe from the caller's search_path: a SECURITY
-- DEFINER function with search_path pinned to pg_catalog, pgque, pg_temp;
-- or an internal one (pgque._*) that no role may call, so it only runs
-- inside pinned functions and under their search_path; or a SQL wrapper
-- whose body is one SELECT that names nothing unqualified: it calls pgque
-- functions (every overload of each name pinned or such a wrapper), casts
-- to pg_catalog types only, and uses no operator (operators are looked up
-- in the search_path too).  A wrapper is inlined into the caller's query
-- and parsed under the caller's search_path, which is why that matters.
---------------------------------------------------------------------------
CREATE FUNCTION test.pinned(p oid) RETURNS boolean LANGUAGE sql AS $$
    SELECT prosecdef AND 'search_path=pg_catalog, pgque, pg_temp' = ANY (coalesce(proconfig, '{}'))
      FROM pg_proc WHERE oid = p
$$;
-- test.plain_select(p): p is a SQL function of one SELECT without operators
-- whose casts name pg_catalog types and whose calls name pgque functions.
CREATE FUNCTION test.plain_select(p oid) RETURNS boolean LANGUAGE sql AS $$
    SELECT l.lanname = 'sql' AND f.prosrc ~ '^\s*SELECT\s' AND f.prosrc !~ ';'
           AND f.prosrc !~ '::\s*(?!pg_catalog\.)'
           AND regexp_replace(f.prosrc, '=>', '', 'g') !~ '[-+*/<>=~!@#%^&|`?]'
           AND NOT EXISTS (SELECT 1 FROM regexp_matches(f.prosrc, '([A-Za-z_][A-Za-z0-9_.]*)\s*\(', 'g') m
                            WHERE m[1] !~ '^pgque\.[a-z_]+$')
      FROM pg_proc f JOIN pg_language l ON l.oid = f.prolang WHERE f.oid = p
$$;
-- test.calls(p): the pgque functions p's body may call: every function of
-- each name it calls (the one called depends on the argument types).
CREATE FUNCTION test.calls(p oid) RETURNS SETOF oid LANGUAGE sql AS $$
    SELECT c.oid FROM pg_proc f, regexp_matches(f.prosrc, 'pgque\.([a-z_]+)\s*\(', 'g') m, pg_proc c
     WHERE f.oid = p AND c.pronamespace = 'pgque'::regnamespace AND c.proname = m[1]
$$;
WITH kind AS (
    SELECT p.oid::regprocedure AS fn, CASE
        WHEN test.pinned(p.oid) THEN 'pinned'
        WHEN p.proname ~ '^_' AND NOT EXISTS (
                 SELECT 1 FROM unnest(ARRAY['public', 'pgque_reader', 'pgque_writer', 'pgque_admin', 'pgque_tenant']) r
                  WHERE has_function_privilege(r, p.oid, 'EXECUTE')) THEN 'internal'
        WHEN test.plain_select(p.oid)
             AND NOT EXISTS (SELECT 1 FROM test.calls(p.oid) c WHERE NOT test.pinned(c) AND NOT test.plain_select(c))
             THEN 'wrapper'
        ELSE 'UNSAFE' END AS kind
      FROM pg_proc p WHERE p.pronamespace = 'pgque'::regnamespace)
SELECT kind, count(*) > 0 AS some,
       CASE WHEN kind IN ('wrapper', 'UNSAFE') THEN string_agg(fn::text, E'\n' ORDER BY fn::text) END AS functions
  FROM kind GROUP BY kind ORDER BY kind;

---------------------------------------------------------------------------
-- 4b. The hostile search_path.  Schema evil has a trap for each of
-- pg_catalog's functions, aggregates and operators (same name and argument
-- types) that plpgsql can declare, a few more for the variadic "any" ones,
-- and domains named like the types that are not SQL keywords.  A trap
-- counts itself in a sequence (not rolled back), warns and raises.
---------------------------------------------------------------------------
CREATE SCHEMA evil;
CREATE SEQUENCE evil.hits;
CREATE FUNCTION evil.trap(what text) RETURNS boolean LANGUAGE plpgsql SET search_path = pg_catalog AS $$
BEGIN
    PERFORM nextval('evil.hits');
    RAISE WARNING 'evil code ran: %', what;
    RAISE EXCEPTION 'evil code ran: %', what;
END
$$;
DO $$
DECLARE
    f    record;
    body text;
    made int := 0;
BEGIN
    FOR f IN SELECT p.oid, p.proname, p.prokind, p.pronargs, pg_get_function_arguments(p.oid) AS args,
                    pg_get_function_identity_arguments(p.oid) AS idargs, pg_get_function_result(p.oid) AS res,
                    p.prorettype::regtype AS ret
               FROM pg_proc p WHERE p.pronamespace = 'pg_catalog'::regnamespace AND p.prokind IN ('f', 'a') LOOP
        body := format('BEGIN PERFORM evil.trap(%L); END', f.oid::regprocedure::text);
        BEGIN
            IF f.prokind = 'f' THEN
                EXECUTE format('CREATE FUNCTION evil.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
                               f.proname, f.args, f.res, body);
            ELSE
                EXECUTE format('CREATE FUNCTION evil.agg_%s(%s) RETURNS %s LANGUAGE plpgsql AS %L',
                               f.oid, concat_ws(', ', f.ret::text, nullif(f.idargs, '')), f.ret, body);
                EXECUTE format('CREATE AGGREGATE evil.%I(%s) (SFUNC = evil.agg_%s, STYPE = %s)',
                               f.proname, CASE WHEN f.pronargs = 0 THEN '*' ELSE f.idargs END, f.oid, f.ret);
            END IF;
            made := made + 1;
        EXCEPTION WHEN OTHERS THEN
            NULL;  -- a pseudo-type plpgsql cannot take ("any", internal, cstring)
        END;
    END LOOP;
    FOR f IN SELECT o.oid, o.oprname, o.oprleft::regtype AS l, o.oprright::regtype AS r, o.oprresult::regtype AS res
               FROM pg_operator o WHERE o.oprnamespace = 'pg_catalog'::regnamespace LOOP
        BEGIN
            EXECUTE format('CREATE FUNCTION evil.op_%s(%s) RETURNS %s LANGUAGE plpgsql AS %L', f.oid,
                           concat_ws(', ', nullif(f.l::oid, 0)::regtype::text, f.r::text), f.res,
                           format('BEGIN PERFORM evil.trap(%L); END', 'operator ' || f.oid::regoperator::text));
            EXECUTE format('CREATE OPERATOR evil.%s (%s RIGHTARG = %s, FUNCTION = evil.op_%s)', f.oprname,
                           CASE WHEN f.l::oid <> 0 THEN format('LEFTARG = %s,', f.l) ELSE '' END, f.r, f.oid);
            made := made + 1;
        EXCEPTION WHEN OTHERS THEN
            NULL;
        END;
    END LOOP;
    -- these take variadic "any" in pg_catalog: text arguments match these better
    CREATE FUNCTION evil.format(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql
        AS $f$BEGIN PERFORM evil.trap('format(text, VARIADIC text[])'); END$f$;
    CREATE FUNCTION evil.concat(VARIADIC text[]) RETURNS text LANGUAGE plpgsql
        AS $f$BEGIN PERFORM evil.trap('concat(VARIADIC text[])'); END$f$;
    CREATE FUNCTION evil.concat_ws(text, VARIADIC text[]) RETURNS text LANGUAGE plpgsql
        AS $f$BEGIN PERFORM evil.trap('concat_ws(text, VARIADIC text[])'); END$f$;
    FOR f IN SELECT t.typname FROM pg_type t
              WHERE t.typnamespace = 'pg_catalog'::regnamespace AND t.typtype = 'b' AND t.typcategory <> 'A'
                AND t.typname IN ('text', 'int2', 'int4', 'int8', 'bool', 'float8', 'name', 'oid', 'jsonb', 'json',
                                  'timestamptz', 'timestamp', 'xid8', 'pg_snapshot', 'regclass', 'regrole', 'bytea')
    LOOP
        EXECUTE format('CREATE DOMAIN evil.%I AS pg_catalog.%I CHECK (evil.trap(%L))', f.typname, f.typname,
                       'domain ' || f.typname);
        made := made + 1;
    END LOOP;
    RAISE NOTICE 'evil: more than 3000 traps: %', made > 3000;
END
$$;
-- test.under_evil(sql): run sql under the search_path evil, pg_catalog,
-- pgque, pg_temp.  Returns 'ok, N rows' or 'SQLSTATE: message'.  Its own
-- code runs under a safe search_path: while the hostile one is set, it
-- parses nothing but sql and the qualified call that sets the safe one again.
CREATE FUNCTION test.under_evil(sql text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    n bigint;
BEGIN
    BEGIN
        PERFORM pg_catalog.set_config('search_path', 'evil, pg_catalog, pgque, pg_temp', true);
        EXECUTE sql;
        GET DIAGNOSTICS n = ROW_COUNT;
        PERFORM pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    EXCEPTION WHEN OTHERS THEN
        RETURN SQLSTATE || ': ' || SQLERRM;
    END;
    RETURN format('ok, %s row%s', n, CASE WHEN n = 1 THEN '' ELSE 's' END);
END
$$;
-- the traps work
SELECT test.under_evil($$SELECT lower('X')$$) AS trap_function;
SELECT test.under_evil($$SELECT 1 = 1$$) AS trap_operator;
SELECT test.under_evil($$SELECT count(*) FROM pg_class$$) AS trap_aggregate;
SELECT test.under_evil($$SELECT 'x'::text$$) AS trap_domain;
SELECT test.under_evil($$SELECT format('%s', 'x'::pg_catalog.text)$$) AS trap_variadic;
SELECT pg_sequence_last_value('evil.hits') AS trap_hits \gset
SELECT :trap_hits AS traps_hit;

-- test.hostile(fn, args...): call fn under_evil with args, as text literals
-- cast to its argument types (schema-qualified).  An argument '=expr' is
-- expr's value, computed first under a safe search_path.  Records fn.
CREATE TABLE test.hostile_called (fn regprocedure);
CREATE FUNCTION test.hostile(fn regprocedure, VARIADIC args text[] DEFAULT '{}') RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    p    pg_proc;
    vals text[] := '{}';
    v    text;
BEGIN
    SELECT * INTO p FROM pg_proc WHERE oid = fn;
    IF cardinality(args) <> p.pronargs THEN
        RAISE EXCEPTION 'test.hostile: % takes % arguments', fn, p.pronargs;
    END IF;
    FOR i IN 1 .. p.pronargs LOOP
        v := args[i];
        IF v LIKE '=%' THEN
            EXECUTE 'SELECT (' || substr(v, 2) || ')::text' INTO v;
        END IF;
        vals := vals || (SELECT format('%s::%I.%I', coalesce(quote_literal(v), 'NULL'), s.nspname, t.typname)
                           FROM pg_type t JOIN pg_namespace s ON s.oid = t.typnamespace
                          WHERE t.oid = p.proargtypes[i - 1]);
    END LOOP;
    v := test.under_evil(format('SELECT 1 FROM pgque.%I(%s)', p.proname, array_to_string(vals, ', ')));
    INSERT INTO test.hostile_called VALUES (fn);
    RETURN v;
END
$$;
-- test.hostile_query(queue, consumer, max): receive_query(), then the query
-- it hands out, under_evil, as a client runs it (with seqscan off, as
-- receive_query asks); then ack.
CREATE FUNCTION test.hostile_query(q text, c text, max int) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
    r   record;
    res text;
BEGIN
    SELECT * INTO r FROM pgque.receive_query(q, c, max);
    IF r.batch_id IS NULL THEN
        RETURN 'nothing handed out';
    END IF;
    PERFORM set_config('enable_seqscan', 'off', true);
    -- its parameters, $1 ctx, $2 batch_id, $3 max, as literals
    res := test.under_evil(replace(replace(replace(r.query, '$1', quote_literal(r.ctx)),
                                           '$2', r.batch_id::text), '$3', max::text));
    PERFORM pgque.ack(r.batch_id);
    RETURN res;
END
$$;

CREATE ROLE t20_hostile;
SELECT test.hostile('pgque.version()');
SELECT test.hostile('pgque.engine_id()');
SELECT test.hostile('pgque.create_queue(text,boolean)', 'q20h', 'false');
SELECT test.hostile('pgque.set_queue_config(text,text,text)', 'q20h', 'max_retries', '0');
SELECT test.hostile('pgque.subscribe(text,text)', 'q20h', 'c');
SELECT test.hostile('pgque.subscribe(text,text)', 'q20h', 'cw');
SELECT test.hostile('pgque.register_consumer(text,text)', 'q20h', 'pc');
SELECT test.hostile('pgque.register_consumer(text,text)', 'q20h', 'gone');
SELECT test.hostile('pgque.unregister_consumer(text,text)', 'q20h', 'gone');
SELECT test.hostile('pgque.subscribe(text,text)', 'q20h', 'gone');
SELECT test.hostile('pgque.unsubscribe(text,text)', 'q20h', 'gone');
-- sends
SELECT test.hostile('pgque.send(text,text,text,text,text,text,text)', 'q20h', 't', 'x', 'e1', NULL, NULL, NULL);
SELECT test.hostile('pgque.send(text,text,jsonb,text,text,text,text)', 'q20h', 't', '{"a": 1}', NULL, NULL, NULL, NULL);
SELECT test.hostile('pgque.send_batch(text,text,text[])', 'q20h', 't', '{x,y}');
SELECT test.hostile('pgque.send_batch(text,text,jsonb[])', 'q20h', 't', '{"{\"b\": 1}","[2]"}');
SELECT test.hostile('pgque.insert_event(text,text,text,text,text,text,text)', 'q20h', 't', 'x', NULL, NULL, NULL, NULL);
SELECT test.hostile('pgque.send_opts(text,text,text,timestamp with time zone,text,interval,integer,text,text,text,text)',
                    'q20h', 't', 'x', NULL, 'k1', '1 hour', '3', NULL, NULL, NULL, NULL);
SELECT test.hostile('pgque.send_opts(text,text,jsonb,timestamp with time zone,text,interval,integer,text,text,text,text)',
                    'q20h', 't', '{}', '=now() + interval ''1 hour''', 'k2', NULL, NULL, NULL, NULL, NULL, NULL);
SELECT test.hostile('pgque.send_at(text,text,text,timestamp with time zone,text,text,text,text)',
                    'q20h', 't', 'x', '=now() + interval ''1 hour''', NULL, NULL, NULL, NULL);
SELECT test.hostile('pgque.send_at(text,text,jsonb,timestamp with time zone,text,text,text,text)',
                    'q20h', 't', '"s"', '=now() - interval ''1 hour''', NULL, NULL, NULL, NULL);
SELECT test.hostile('pgque.send_unique(text,text,text,text,interval)', 'q20h', 't', 'x', 'k3', NULL);
SELECT test.hostile('pgque.send_unique(text,text,jsonb,text,interval)', 'q20h', 't', '{}', 'k3', '1 minute');
SELECT test.hostile('pgque.cancel_scheduled(text,bigint)', 'q20h',
                    '=(SELECT max(d.ev_id) FROM pgque.delayed d JOIN pgque.queue q ON q.queue_id = d.dq_queue WHERE q.queue_name = ''q20h'')');
SELECT test.hostile('pgque.cancel(text,bigint,text)', 'q20h', '-1', NULL);
-- schedules, made due so that maint() fires them
SELECT test.hostile('pgque.create_schedule(text,text,text,text,interval,text,timestamp with time zone)',
                    's20a', 'q20h', 't', 'x', '1 hour', 'Europe/Berlin', NULL);
SELECT test.hostile('pgque.create_schedule(text,text,text,jsonb,interval,text,timestamp with time zone)',
                    's20b', 'q20h', 't', '{}', '1 day', 'UTC', '=now() - interval ''1 day 1 hour''');
SELECT test.hostile('pgque.create_schedule(text,text,text,text,text,text)', 's20c', 'q20h', 't', 'x', '*/5 * * * *', 'UTC');
SELECT test.hostile('pgque.create_schedule(text,text,text,jsonb,text,text)', 's20d', 'q20h', 't', '[]', '@daily', 'Asia/Tokyo');
SELECT test.hostile('pgque.list_schedules(text,text)', 'q20h', NULL);
UPDATE pgque.schedule SET sched_next_run = now() - interval '1 minute' WHERE sched_name LIKE 's20%';
SELECT test.hostile('pgque.maint()');
SELECT runs FROM pgque.list_schedules('q20h');
-- ticks, information
SELECT test.hostile('pgque.force_tick(text)', 'q20h');
SELECT test.hostile('pgque.ticker(text)', 'q20h');
SELECT test.hostile('pgque.ticker()');
SELECT test.hostile('pgque.get_queue_info(text,text)', 'q20h', NULL);
SELECT test.hostile('pgque.get_queue_info(text,text)', NULL, 'nobody20');
SELECT test.hostile('pgque.get_unclaimed_info()');
SELECT test.hostile('pgque.get_consumer_info(text,text,text)', 'q20h', 'c', NULL);
SELECT test.hostile('pgque.get_table_info()');
SELECT test.hostile('pgque.peek(text,text,integer)', 'q20h', 'c', '100');
SELECT test.hostile('pgque.find_events(text,text,boolean,integer)', 'q20h', 't', 'false', '100');
SELECT test.hostile('pgque.message_status(text,bigint)', 'q20h', '1');
SELECT test.hostile('pgque.list_messages(text,text,text,integer,bigint,text,timestamp with time zone,timestamp with time zone)', 'q20h', 'pending', 'c', '10', NULL, NULL, NULL, NULL);
-- the modern consumer: receive, nack (max_retries 0: a dead letter), heartbeat, ack
SELECT test.hostile('pgque.receive(text,text,integer,text,interval)', 'q20h', 'c', '2', NULL, '30 seconds');
SELECT test.hostile('pgque.get_batch_info(bigint)', '=test.batch(''q20h'', ''c'')');
SELECT test.hostile('pgque.nack(bigint,bigint,interval,text)', '=test.piece(''q20h'', ''c'')',
                    '=(SELECT min(msg_id) FROM pgque.peek(''q20h'', ''c'', 10))', '0 seconds', 'failed');
SELECT test.hostile('pgque.snooze(bigint,bigint,interval)', '=test.piece(''q20h'', ''c'')',
                    '=(SELECT msg_id FROM pgque.peek(''q20h'', ''c'', 10) ORDER BY msg_id OFFSET 1 LIMIT 1)', '0 seconds');
SELECT test.hostile('pgque.reject(bigint,bigint,text)', '=test.piece(''q20h'', ''c'')',
                    '=(SELECT min(msg_id) FROM pgque.peek(''q20h'', ''c'', 10))', 'hopeless');
SELECT test.hostile('pgque.cancel_message(bigint,bigint)', '=test.piece(''q20h'', ''c'')',
                    '=(SELECT min(msg_id) FROM pgque.peek(''q20h'', ''c'', 10))');
SELECT test.hostile('pgque.heartbeat(bigint,interval)', '=test.piece(''q20h'', ''c'')', '1 minute');
SELECT test.hostile('pgque.cancelled_messages(bigint)', '=test.piece(''q20h'', ''c'')');
SELECT test.hostile('pgque.ack(bigint)', '=test.piece(''q20h'', ''c'')');
SELECT test.hostile_query('q20h', 'c', 2);
-- cooperative workers
SELECT test.hostile('pgque.receive(text,text,integer,text,interval)', 'q20h', 'cw', '1', 'w1', '30 seconds');
SELECT test.hostile('pgque.get_worker_info(text,text)', 'q20h', 'cw');
SELECT test.hostile('pgque.receive_query(text,text,integer,text,interval)', 'q20h', 'cw', '1', 'w2', '30 seconds');
SELECT test.hostile('pgque.unregister_worker(text,text,text,boolean)', 'q20h', 'cw', 'w1', 'true');
SELECT test.hostile('pgque.unregister_worker(text,text,text,boolean)', 'q20h', 'cw', 'w2', 'true');
-- the PgQ batch API
SELECT test.hostile('pgque.next_batch_info(text,text)', 'q20h', 'pc');
SELECT test.hostile('pgque.get_batch_events(bigint)', '=test.batch(''q20h'', ''pc'')');
SELECT test.hostile('pgque.event_retry(bigint,bigint,integer)', '=test.batch(''q20h'', ''pc'')',
                    '=(SELECT min(ev_id) FROM pgque.get_batch_events(test.batch(''q20h'', ''pc'')))', '0');
SELECT test.hostile('pgque.event_retry(bigint,bigint,timestamp with time zone)', '=test.batch(''q20h'', ''pc'')',
                    '=(SELECT max(ev_id) FROM pgque.get_batch_events(test.batch(''q20h'', ''pc'')))', '=now()');
SELECT test.hostile('pgque.finish_batch(bigint)', '=test.batch(''q20h'', ''pc'')');
SELECT test.hostile('pgque.next_batch(text,text)', 'q20h', 'pc');
-- maintenance
SELECT test.hostile('pgque.maint_retry_events()');
SELECT test.hostile('pgque.maint_delayed_events()');
SELECT test.hostile('pgque.maint_rotate_delayed(interval)', '1 microsecond');
SELECT test.hostile('pgque.maint_rotate_dedup(interval)', '1 microsecond');
SELECT test.hostile('pgque.maint_rotate_logs(interval)', '1 microsecond');
SELECT test.hostile('pgque.maint_rotate_tables_step1(text)', 'q20h');
SELECT test.hostile('pgque.maint_rotate_tables_step2()');
-- dead letters
SELECT test.hostile('pgque.dlq_list(text,integer)', 'q20h', '10');
SELECT test.hostile('pgque.dlq_replay(bigint)',
                    '=(SELECT min(dl_id) FROM pgque.dlq_list(''q20h'', 10))');
SELECT test.hostile('pgque.dlq_purge(text,interval)', 'q20h', '0');
-- queue state, access
SELECT test.hostile('pgque.pause_queue(text)', 'q20h');
SELECT test.hostile('pgque.resume_queue(text)', 'q20h');
SELECT test.hostile('pgque.grant_access(name,text,text,text)', 't20_hostile', 'send', NULL, 'q20h');
SELECT test.hostile('pgque.list_access()');
SELECT test.hostile('pgque.revoke_access(name,text,text,text)', 't20_hostile', 'send', NULL, 'q20h');
-- leader leases
SELECT test.hostile('pgque.leader_lease(text,text,interval)', 'l20', 'h1', '1 minute');
SELECT test.hostile('pgque.leader_info(text)', 'l20');
SELECT test.hostile('pgque.leader_release(text,text)', 'l20', 'h1');
-- and away
SELECT test.hostile('pgque.drop_schedule(text,boolean,text)', 's20a', 'false', NULL);
SELECT test.hostile('pgque.drop_schedule(text,boolean,text)', 's20b', 'false', 'q20h');
SELECT test.hostile('pgque.drop_queue(text,boolean)', 'q20h', 'true');

-- every public function was called, and no trap went off
SELECT p.oid::regprocedure AS not_called FROM pg_proc p
 WHERE p.pronamespace = 'pgque'::regnamespace AND p.proname !~ '^_'
   AND p.oid NOT IN (SELECT fn FROM test.hostile_called);
SELECT pg_sequence_last_value('evil.hits') - :trap_hits AS evil_ran;

-- clean up
SET client_min_messages = warning;
DROP SCHEMA evil CASCADE;
RESET client_min_messages;
DROP FUNCTION test.hostile(regprocedure, text[]), test.hostile_query(text, text, int), test.under_evil(text),
              test.pinned(oid), test.plain_select(oid), test.calls(oid);
DROP TABLE test.hostile_called;
SELECT pgque.drop_queue(q, true)
  FROM unnest(ARRAY['acme20.orders', 'globex20.jobs', 'tmp20.q', 'q20_plain', 'q20_plain2']) q;
REVOKE USAGE ON SCHEMA test FROM t20_acme, t20_globex, t20_tmp;
DROP ROLE t20_acme, t20_globex, t20_tmp, t20_hostile;
SELECT pgque.maint() >= 0 AS maint_ran;
SELECT count(*) AS grants_left FROM pgque.acl;
