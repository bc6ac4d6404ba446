-- 09_security: roles and privileges.  pgque_reader consumes, pgque_writer
-- produces, pgque_admin does both plus queue management, ticker, maintenance
-- and dead letters; PUBLIC gets nothing.  Tests run under SET ROLE as
-- LOGIN-less test roles.  Queues of this file are named q09*.

-- the three roles exist and cannot log in; admin is a member of reader and
-- writer, reader and writer are independent
SELECT rolname, rolcanlogin FROM pg_roles
 WHERE rolname IN ('pgque_reader', 'pgque_writer', 'pgque_admin') ORDER BY rolname;
SELECT pg_has_role('pgque_admin', 'pgque_reader', 'MEMBER') AS admin_is_reader,
       pg_has_role('pgque_admin', 'pgque_writer', 'MEMBER') AS admin_is_writer,
       pg_has_role('pgque_reader', 'pgque_writer', 'MEMBER') AS reader_is_writer,
       pg_has_role('pgque_writer', 'pgque_reader', 'MEMBER') AS writer_is_reader,
       pg_has_role('pgque_reader', 'pgque_admin', 'MEMBER') AS reader_is_admin;

-- test roles; the helpers in schema test must be callable by all of them
CREATE ROLE t_reader;
CREATE ROLE t_writer;
CREATE ROLE t_admin;
CREATE ROLE t_nobody;
GRANT pgque_reader TO t_reader;
GRANT pgque_writer TO t_writer;
GRANT pgque_admin TO t_admin;
GRANT USAGE ON SCHEMA test TO t_reader, t_writer, t_admin, t_nobody;

-- admin can create, configure and drop queues
SET ROLE t_admin;
SELECT current_user;
SELECT pgque.create_queue('q09');
SELECT pgque.set_queue_config('q09', 'max_retries', '0');
SELECT pgque.create_queue('q09_tmp');
SELECT pgque.drop_queue('q09_tmp');
RESET ROLE;
-- queue objects belong to pgque's owner, not to the admin who created them
SELECT format('pgque.event_%s_0', queue_id) AS evt, format('pgque.event_%s_seq', queue_id) AS evseq
  FROM pgque.queue WHERE queue_name = 'q09' \gset
SELECT count(*) AS owned_by_t_admin FROM pg_class WHERE relowner = 't_admin'::regrole;

-- reader can subscribe (and the PgQ names), read the info functions
SET ROLE t_reader;
SELECT pgque.subscribe('q09', 'r');
SELECT pgque.register_consumer('q09', 'r2');
SELECT pgque.unregister_consumer('q09', 'r2');
SELECT pgque.unsubscribe('q09', 'r2');
SELECT pgque.version() = extversion AS version FROM pg_extension WHERE extname = 'pgque';
SELECT queue_name, consumers FROM pgque.get_queue_info('q09');
SELECT consumer_name FROM pgque.get_consumer_info('q09');
-- ... but cannot produce
SELECT test.err($$SELECT pgque.send('q09', 't', 'x')$$);
SELECT test.err($$SELECT pgque.send('q09', 't', '{}'::jsonb)$$);
SELECT test.err($$SELECT pgque.send_batch('q09', 't', ARRAY['x'])$$);
SELECT test.err($$SELECT pgque.send_batch('q09', 't', ARRAY['{}']::jsonb[])$$);
SELECT test.err($$SELECT pgque.insert_event('q09', 't', 'x')$$);
-- ... nor manage queues, tick, maintain or handle dead letters
SELECT test.err($$SELECT pgque.create_queue('q09_r')$$);
SELECT test.err($$SELECT pgque.drop_queue('q09', true)$$);
SELECT test.err($$SELECT pgque.set_queue_config('q09', 'max_retries', '9')$$);
SELECT test.err($$SELECT pgque.ticker('q09')$$);
SELECT test.err($$SELECT pgque.ticker()$$);
SELECT test.err($$SELECT pgque.force_tick('q09')$$);
SELECT test.err($$SELECT pgque.maint()$$);
SELECT test.err($$SELECT pgque.maint_retry_events()$$);
SELECT test.err($$SELECT pgque.dlq_list('q09')$$);
SELECT test.err($$SELECT pgque.dlq_replay(1)$$);
SELECT test.err($$SELECT pgque.dlq_purge('q09')$$);
RESET ROLE;

-- writer can send, send_batch (text and jsonb) and insert_event, and read info
SET ROLE t_writer;
SELECT pgque.send('q09', 't', 'w1');
SELECT pgque.send('q09', 't', '{"w": 2}'::jsonb);
SELECT pgque.send_batch('q09', 't', ARRAY['w3', 'w4']);
SELECT pgque.send_batch('q09', 't', ARRAY['{"w": 5}']::jsonb[]);
SELECT pgque.insert_event('q09', 't', 'w6');
SELECT pgque.version() = extversion AS version FROM pg_extension WHERE extname = 'pgque';
SELECT queue_name, consumers FROM pgque.get_queue_info('q09');
-- ... but cannot consume
SELECT test.err($$SELECT pgque.subscribe('q09', 'w')$$);
SELECT test.err($$SELECT pgque.register_consumer('q09', 'w')$$);
SELECT test.err($$SELECT pgque.unsubscribe('q09', 'r')$$);
SELECT test.err($$SELECT pgque.receive('q09', 'r', 10)$$);
SELECT test.err($$SELECT pgque.ack(1)$$);
SELECT test.err($$SELECT pgque.nack(1, 1)$$);
SELECT test.err($$SELECT pgque.next_batch('q09', 'r')$$);
SELECT test.err($$SELECT pgque.get_batch_events(1)$$);
SELECT test.err($$SELECT pgque.finish_batch(1)$$);
-- ... nor manage queues, tick, maintain or handle dead letters
SELECT test.err($$SELECT pgque.create_queue('q09_w')$$);
SELECT test.err($$SELECT pgque.drop_queue('q09', true)$$);
SELECT test.err($$SELECT pgque.ticker('q09')$$);
SELECT test.err($$SELECT pgque.force_tick('q09')$$);
SELECT test.err($$SELECT pgque.maint()$$);
SELECT test.err($$SELECT pgque.dlq_list('q09')$$);
SELECT test.err($$SELECT pgque.dlq_replay(1)$$);
RESET ROLE;

-- admin can tick and run maintenance
SET ROLE t_admin;
SELECT pgque.force_tick('q09') IS NOT NULL AS ticked;
SELECT test.err($$SELECT pgque.ticker('q09')$$);
SELECT test.err($$SELECT pgque.ticker()$$);
SELECT test.err($$SELECT pgque.maint()$$);
SELECT test.err($$SELECT pgque.maint_rotate_logs()$$);
RESET ROLE;

-- reader can receive, nack and ack (max_retries is 0: the nack dead-letters)
SET ROLE t_reader;
SELECT msg_id, payload FROM pgque.receive('q09', 'r', 10);
SELECT test.piece('q09', 'r') AS b \gset
SELECT pgque.nack(:b, 1, '0 seconds', 'failed for t_reader');
SELECT pgque.ack(:b);
RESET ROLE;

-- admin can list, replay and purge dead letters
SET ROLE t_admin;
SELECT consumer_name, reason, msg_id, payload FROM pgque.dlq_list('q09');
SELECT dl_id AS dl FROM pgque.dlq_list('q09') \gset
SELECT pgque.dlq_replay(:dl);
SELECT count(*) AS dead_letters FROM pgque.dlq_list('q09');
SELECT pgque.dlq_purge('q09', '0');
SELECT pgque.force_tick('q09') IS NOT NULL AS ticked;
-- ... and, as a member of both, send and receive too
SELECT test.err($$SELECT pgque.send('q09', 't', 'by admin')$$);
SELECT test.err($$SELECT pgque.receive('q09', 'nobody-subscribed')$$);
RESET ROLE;
SET ROLE t_reader;
SELECT test.drain('q09', 'r');
RESET ROLE;

-- a role without grants can do nothing at all, not even find the schema
SET ROLE t_nobody;
SELECT test.err($$SELECT pgque.send('q09', 't', 'x')$$);
SELECT test.err($$SELECT pgque.send_batch('q09', 't', ARRAY['x'])$$);
SELECT test.err($$SELECT pgque.receive('q09', 'r', 10)$$);
SELECT test.err($$SELECT pgque.subscribe('q09', 'n')$$);
SELECT test.err($$SELECT pgque.get_queue_info('q09')$$);
SELECT test.err($$SELECT pgque.version()$$);
SELECT test.err($$SELECT pgque.create_queue('q09_n')$$);
SELECT test.err($$SELECT pgque.ticker()$$);
SELECT test.err($$SELECT * FROM pgque.queue$$);
SELECT test.err($$SELECT * FROM pgque.subscription$$);
SELECT test.err(format('SELECT * FROM %s', :'evt')) AS event_table;
RESET ROLE;

-- no role, not even admin, touches the tables directly: reads, inserts
-- into event tables and sequence calls are refused (42501).  The one
-- exception: readers may read event tables, for receive_query().
SET ROLE t_reader;
SELECT test.err($$SELECT * FROM pgque.queue$$);
SELECT test.err($$SELECT * FROM pgque.subscription$$);
SELECT test.err($$UPDATE pgque.consumer SET sub_consumer = 'x'$$);
SELECT test.err($$INSERT INTO pgque.sub_state (ss_part, ss_sub, ss_seq) VALUES (0, 0, 0)$$);
SELECT left(test.err(format('SELECT * FROM %s', :'evt')), 5) AS event_table_select;
SELECT left(test.err(format('INSERT INTO %s (ev_slot, ev_id) VALUES (0, 0)', :'evt')), 5) AS event_table_insert;
SELECT left(test.err($$SELECT * FROM pgque.event$$), 5) AS event_parent_select;
RESET ROLE;
SET ROLE t_writer;
SELECT left(test.err(format('SELECT * FROM %s', :'evt')), 5) AS event_table_select_writer;
RESET ROLE;
SET ROLE t_writer;
SELECT test.err($$SELECT * FROM pgque.tick$$);
SELECT left(test.err(format('INSERT INTO %s (ev_id, ev_type) VALUES (100, %L)', :'evt', 'forged')), 5) AS event_table_insert;
SELECT left(test.err(format('SELECT nextval(%L)', :'evseq')), 5) AS event_seq_nextval;
RESET ROLE;
SET ROLE t_admin;
SELECT test.err($$SELECT * FROM pgque.dead_letter$$);
SELECT test.err($$DELETE FROM pgque.queue$$);
SELECT left(test.err(format('TRUNCATE %s', :'evt')), 5) AS event_table_truncate;
RESET ROLE;
-- the same, from the catalog, for every table and sequence of the schema
-- (readers read one table besides the events: pgque.cancelled, for
-- receive_query's clients)
SELECT r.role,
       count(*) FILTER (WHERE c.relkind = 'r' AND has_table_privilege(r.role, c.oid,
                        'INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER')) AS tables,
       count(*) FILTER (WHERE c.relkind = 'r' AND has_table_privilege(r.role, c.oid, 'SELECT')
                          AND c.relname !~ '^event_([0-9]+_[0-9]+|free_[0-9]+)$') AS read_tables,
       count(*) FILTER (WHERE c.relkind = 'r' AND has_table_privilege(r.role, c.oid, 'SELECT')
                          AND c.relname ~ '^event_([0-9]+_[0-9]+|free_[0-9]+)$') > 0 AS reads_events,
       count(*) FILTER (WHERE c.relkind = 'S' AND has_sequence_privilege(r.role, c.oid,
                        'USAGE, SELECT, UPDATE')) AS sequences
  FROM unnest(ARRAY['public', 'pgque_reader', 'pgque_writer', 'pgque_admin']) r(role)
 CROSS JOIN pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'pgque' AND c.relkind IN ('r', 'S')
 GROUP BY r.role ORDER BY r.role;

-- PUBLIC has no USAGE on the schema and EXECUTE on no pgque function
SELECT has_schema_privilege('public', 'pgque', 'USAGE') AS public_usage;
SELECT count(*) > 0 AS has_functions, count(*) FILTER (WHERE has_function_privilege('public', p.oid, 'EXECUTE')) AS public_executable
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'pgque' AND p.prokind IN ('f', 'p');
-- internal helpers (pgque._*) are executable by none of the roles
SELECT count(*) FILTER (WHERE has_function_privilege('pgque_admin', p.oid, 'EXECUTE')
                           OR has_function_privilege('pgque_reader', p.oid, 'EXECUTE')
                           OR has_function_privilege('pgque_writer', p.oid, 'EXECUTE')) AS internal_executable
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'pgque' AND p.proname LIKE '\_%';

-- every SECURITY DEFINER function pins search_path, to trusted schemas with
-- pg_temp last (no definer function without one; none naming public)
SELECT count(*) > 0 AS has_definer_functions,
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')) AS without_search_path,
       string_agg(p.oid::regprocedure::text, ', ') FILTER (
           WHERE NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c WHERE c LIKE 'search\_path=%')) AS offenders,
       count(*) FILTER (WHERE NOT EXISTS (SELECT 1 FROM unnest(p.proconfig) c
                                          WHERE c LIKE 'search\_path=%' AND c LIKE '%pg\_temp'
                                            AND c NOT LIKE '%public%' AND c NOT LIKE '%$user%')) AS unsafe_search_path
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
 WHERE n.nspname = 'pgque' AND p.prosecdef;

-- clean up: the queue, the test roles and their privileges
SELECT pgque.drop_queue('q09', true);
DROP OWNED BY t_reader, t_writer, t_admin, t_nobody;
DROP ROLE t_reader, t_writer, t_admin, t_nobody;
SELECT count(*) AS test_roles_left FROM pg_roles WHERE rolname LIKE 't\_%';
SELECT count(*) AS left_over FROM pgque.queue WHERE queue_name LIKE 'q09%';
