-- 01_queue: queue lifecycle (create_queue, drop_queue, set_queue_config) and
-- queue name validation.  Queues of this file are named q01_*.

-- create_queue returns 1 when it creates the queue
SELECT pgque.create_queue('q01_a');
-- ... and 0 when the queue exists (if_not_exists defaults to true, NULL means true too)
SELECT pgque.create_queue('q01_a');
SELECT pgque.create_queue('q01_a', true);
SELECT pgque.create_queue('q01_a', NULL);
-- ... and PQ002 with if_not_exists => false
SELECT test.err($$SELECT pgque.create_queue('q01_a', if_not_exists => false)$$);
-- only one row exists for the name
SELECT count(*) AS rows FROM pgque.queue WHERE queue_name = 'q01_a';

-- accepted name characters: letters, digits, '_', '.', '-' (not first)
SELECT pgque.create_queue('Q01.b-c_9');
SELECT pgque.create_queue('01q');

-- invalid names are PQ006 and create nothing
SELECT test.err($$SELECT pgque.create_queue(NULL)$$);
SELECT test.err($$SELECT pgque.create_queue('')$$);
SELECT test.err($$SELECT pgque.create_queue('q01 space')$$);
SELECT test.err($$SELECT pgque.create_queue('q01''quote')$$);
SELECT test.err($$SELECT pgque.create_queue('q01;drop')$$);
SELECT test.err($$SELECT pgque.create_queue('-q01')$$);
SELECT test.err($$SELECT pgque.create_queue('_q01')$$);
SELECT test.err($$SELECT pgque.create_queue('q01_é')$$);
SELECT test.err($$SELECT pgque.create_queue('q01/x')$$);
SELECT array_agg(queue_name ORDER BY queue_name) AS queues FROM pgque.queue;

-- name length: 58 bytes is PQ006, 57 bytes is the limit ('pgque_' || name
-- must fit a 63-byte NOTIFY channel)
SELECT 'q01_' || repeat('x', 53) AS long57, 'q01_' || repeat('x', 54) AS long58 \gset
SELECT octet_length(:'long57') AS len57, octet_length(:'long58') AS len58;
SELECT test.err(format('SELECT pgque.create_queue(%L)', :'long58'));
-- multibyte characters count in bytes, and are rejected anyway
SELECT test.err(format('SELECT pgque.create_queue(%L)', repeat('é', 29)));

-- a 57-byte name works end to end: create, subscribe, send, tick (with its
-- NOTIFY on the 63-byte channel), receive
SELECT pgque.create_queue(:'long57');
SELECT pgque.subscribe(:'long57', 'c1');
SELECT dblink_connect('l01', 'dbname=' || current_database());
SELECT dblink_exec('l01', format('LISTEN %I', 'pgque_' || :'long57'));
SELECT pgque.send(:'long57', 't', 'long name payload');
SELECT pgque.force_tick(:'long57') IS NOT NULL AS ticked;
SELECT msg_id, type, payload FROM pgque.receive(:'long57', 'c1', 10);
SELECT pgque.ack(test.piece(:'long57', 'c1'));
SELECT * FROM dblink('l01', 'SELECT 1') AS t(x int);
SELECT notify_name = 'pgque_' || :'long57' AS channel_matches, octet_length(notify_name) AS channel_len
  FROM dblink_get_notify('l01');
SELECT dblink_disconnect('l01');
SELECT queue_name = :'long57' AS same_name, consumers FROM pgque.get_queue_info(:'long57');
SELECT pgque.drop_queue(:'long57', true);

-- drop_queue: unknown queue is PQ001, an impossible name PQ006
SELECT test.err($$SELECT pgque.drop_queue('q01_nope')$$);
SELECT test.err($$SELECT pgque.drop_queue('q01 nope')$$);
SELECT test.err($$SELECT pgque.drop_queue(NULL)$$);

-- drop_queue refuses while consumers are subscribed (PQ007, naming them),
-- also with force => NULL or false
SELECT pgque.create_queue('q01_drop');
SELECT pgque.subscribe('q01_drop', 'zed'), pgque.subscribe('q01_drop', 'alpha');
SELECT test.err($$SELECT pgque.drop_queue('q01_drop')$$);
SELECT test.err($$SELECT pgque.drop_queue('q01_drop', false)$$);
SELECT test.err($$SELECT pgque.drop_queue('q01_drop', NULL)$$);
SELECT count(*) AS still_there FROM pgque.queue WHERE queue_name = 'q01_drop';

-- force => true drops the queue, its event tables, sequences, ticks and
-- subscriptions.  Record the object names before dropping.
SELECT pgque.send('q01_drop', 't', 'old ' || i) FROM generate_series(1, 3) i;
SELECT pgque.force_tick('q01_drop') IS NOT NULL AS ticked;
SELECT queue_id AS drop_qid, queue_slot AS drop_slot FROM pgque.queue WHERE queue_name = 'q01_drop' \gset
CREATE TEMP TABLE q01_objs AS
SELECT format('pgque.event_%s_%s', :drop_qid, n) AS obj FROM generate_series(0, 2) n
UNION ALL SELECT format('pgque.event_%s_seq', :drop_qid)
UNION ALL SELECT format('pgque.event_%s_gen', :drop_qid);
SELECT count(*) AS objects, count(to_regclass(obj)) AS existing FROM q01_objs;
SELECT count(*) AS event_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'pgque' AND c.relkind = 'r' AND c.relname LIKE format('event\_%s\_%%', :drop_qid);
SELECT pgque.drop_queue('q01_drop', force => true);
SELECT count(*) AS objects, count(to_regclass(obj)) AS existing FROM q01_objs;
SELECT count(*) AS event_tables FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE n.nspname = 'pgque' AND c.relname LIKE format('event\_%s\_%%', :drop_qid);
SELECT (SELECT count(*) FROM pgque.queue WHERE queue_name = 'q01_drop') AS queues,
       (SELECT count(*) FROM pgque.tick WHERE tick_queue = :drop_qid) AS ticks,
       (SELECT count(*) FROM pgque.subscription WHERE sub_queue = :drop_qid) AS subscriptions;
SELECT test.err($$SELECT pgque.get_queue_info('q01_drop')$$);
SELECT test.err($$SELECT pgque.send('q01_drop', 't', 'x')$$);
SELECT test.err($$SELECT pgque.drop_queue('q01_drop', true)$$);
-- its emptied tables are kept, free, for the next queue; a producer that
-- raced the drop may still write into them (simulated here)
SELECT count(*) AS rows_left FROM pgque.event WHERE ev_slot BETWEEN :drop_slot AND :drop_slot + 2;
INSERT INTO pgque.event (ev_slot, ev_id, ev_type, ev_data) VALUES (:drop_slot, 99, 't', 'stale');

-- the name can be reused; the new queue starts empty: new id, no consumers,
-- msg ids start again at 1, old events are not delivered
SELECT pgque.create_queue('q01_drop');
SELECT queue_id <> :drop_qid AS new_id, queue_slot = :drop_slot AS reuses_tables
  FROM pgque.queue WHERE queue_name = 'q01_drop';
SELECT count(*) AS stale_rows FROM pgque.event WHERE ev_slot BETWEEN :drop_slot AND :drop_slot + 2;
SELECT consumers, ev_new, retry_pending, dead_letters FROM pgque.get_queue_info('q01_drop');
SELECT pgque.subscribe('q01_drop', 'alpha');
SELECT pgque.force_tick('q01_drop') IS NOT NULL AS ticked;
SELECT test.ids('q01_drop', 'alpha');
SELECT pgque.send('q01_drop', 't', 'new');
SELECT pgque.force_tick('q01_drop') IS NOT NULL AS ticked;
SELECT msg_id, payload FROM pgque.receive('q01_drop', 'alpha', 10);
-- drop_queue without consumers needs no force
SELECT pgque.unsubscribe('q01_drop', 'alpha');
SELECT pgque.drop_queue('q01_drop');
SELECT count(*) AS gone FROM pgque.queue WHERE queue_name = 'q01_drop';

-- set_queue_config: defaults, then every parameter, seen in get_queue_info
SELECT pgque.create_queue('q01_cfg');
\x on
SELECT queue_ticker_max_count, queue_ticker_max_lag, queue_ticker_idle_period, queue_rotation_period,
       queue_max_retries, queue_retry_backoff_base, queue_retry_backoff_cap
  FROM pgque.get_queue_info('q01_cfg');
\x off
SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', '42');
SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_lag', '3 seconds');
SELECT pgque.set_queue_config('q01_cfg', 'ticker_idle_period', '5 minutes');
SELECT pgque.set_queue_config('q01_cfg', 'rotation_period', '1 day');
SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '7');
SELECT pgque.set_queue_config('q01_cfg', 'retry_backoff_base', '2 seconds');
SELECT pgque.set_queue_config('q01_cfg', 'retry_backoff_cap', '10 minutes');
\x on
SELECT queue_ticker_max_count, queue_ticker_max_lag, queue_ticker_idle_period, queue_rotation_period,
       queue_max_retries, queue_retry_backoff_base, queue_retry_backoff_cap
  FROM pgque.get_queue_info('q01_cfg');
\x off
-- the PgQ spelling with a 'queue_' prefix (and any case) is accepted too
SELECT pgque.set_queue_config('q01_cfg', 'queue_ticker_max_count', '43');
SELECT pgque.set_queue_config('q01_cfg', 'queue_ticker_max_lag', '4 seconds');
SELECT pgque.set_queue_config('q01_cfg', 'queue_ticker_idle_period', '6 minutes');
SELECT pgque.set_queue_config('q01_cfg', 'queue_rotation_period', '2 days');
SELECT pgque.set_queue_config('q01_cfg', 'queue_max_retries', '8');
SELECT pgque.set_queue_config('q01_cfg', 'queue_retry_backoff_base', '3 seconds');
SELECT pgque.set_queue_config('q01_cfg', 'QUEUE_RETRY_BACKOFF_CAP', '11 minutes');
\x on
SELECT queue_ticker_max_count, queue_ticker_max_lag, queue_ticker_idle_period, queue_rotation_period,
       queue_max_retries, queue_retry_backoff_base, queue_retry_backoff_cap
  FROM pgque.get_queue_info('q01_cfg');
\x off
-- zero is allowed where the parameter says >= 0
SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '0');
SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_lag', '0');
SELECT pgque.set_queue_config('q01_cfg', 'retry_backoff_base', '0');
SELECT pgque.set_queue_config('q01_cfg', 'retry_backoff_cap', '0');
-- and the int limit itself for an int parameter
SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', '2147483647');
SELECT queue_ticker_max_count, queue_ticker_max_lag, queue_max_retries,
       queue_retry_backoff_base, queue_retry_backoff_cap
  FROM pgque.get_queue_info('q01_cfg');
-- restore known values before the error cases
SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', '42');
SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '7');
SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_lag', '3 seconds');

-- set_queue_config errors: unknown queue PQ001
SELECT test.err($$SELECT pgque.set_queue_config('q01_nope', 'max_retries', '1')$$);
-- unknown parameter, NULL parameter, NULL value: PQ006
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_size', '1')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'queue_name', 'x')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', NULL, '1')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'max_retries', NULL)$$);
-- non-numeric values: PQ006
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', 'ten')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '1.5')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_lag', 'soon')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'rotation_period', '')$$);
-- negative values: PQ006
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', '-1')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '-1')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_lag', '-1 second')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_idle_period', '-1 minute')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'rotation_period', '-1 hour')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'retry_backoff_base', '-1 second')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'retry_backoff_cap', '-1 second')$$);
-- zero where a positive value is required: PQ006
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', '0')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_idle_period', '0')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'rotation_period', '0 seconds')$$);
-- values too big for the setting: PQ006
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_max_count', '2147483648')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'max_retries', '99999999999999999999')$$);
SELECT test.err($$SELECT pgque.set_queue_config('q01_cfg', 'ticker_idle_period', '999999999999 years')$$);
-- none of the failed calls changed anything
SELECT queue_ticker_max_count, queue_ticker_max_lag, queue_ticker_idle_period, queue_rotation_period,
       queue_max_retries, queue_retry_backoff_base, queue_retry_backoff_cap
  FROM pgque.get_queue_info('q01_cfg');

-- Event tables hang off groups of 64 queues: the 70 queues below fill one
-- group and open the next, and events of a queue in either are delivered.
-- (Queues made earlier in this run count too, so the group boundary falls
-- somewhere among them.)
SELECT count(*) FILTER (WHERE pgque.create_queue('q01_g' || i) = 1) AS created FROM generate_series(1, 70) i;
SELECT count(*) >= 2 AS groups, bool_and(NOT isleaf) AS partitioned, bool_and(level = 1) AS under_root
  FROM pg_partition_tree('pgque.event') WHERE parentrelid = 'pgque.event'::regclass;
SELECT count(*) = 0 AS leaves_under_groups_only
  FROM pg_partition_tree('pgque.event') WHERE isleaf AND level <> 2;
SELECT pgque.subscribe('q01_g1', 'c'), pgque.subscribe('q01_g70', 'c');
SELECT pgque.send('q01_g1', 't', 'first'), pgque.send('q01_g70', 't', 'last');
SELECT pgque.force_tick('q01_g1') > 0 AS ticked, pgque.force_tick('q01_g70') > 0 AS ticked;
SELECT m.payload FROM pgque.receive('q01_g1', 'c', 10) m;
SELECT m.payload FROM pgque.receive('q01_g70', 'c', 10) m;
SELECT count(*) FILTER (WHERE pgque.drop_queue('q01_g' || i, true) = 1) AS dropped FROM generate_series(1, 70) i;

-- clean up: every q01 queue is gone
SELECT pgque.drop_queue('q01_cfg', true);
SELECT pgque.drop_queue('q01_a', true);
SELECT pgque.drop_queue('Q01.b-c_9', true);
SELECT pgque.drop_queue('01q', true);
SELECT count(*) AS left_over FROM pgque.queue;
