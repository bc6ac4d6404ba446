-- 02_produce: send, send_batch, insert_event, transactional enqueue.
-- Queues of this file are named q02_*.  msg ids are per-queue sequences, so
-- they are deterministic here.
SELECT pgque.create_queue('q02');
SELECT pgque.subscribe('q02', 'c');

-- send returns increasing ids; a text payload is stored exactly as given, a
-- jsonb payload in jsonb's normalized form; extras 1..4 are stored; NULL
-- payloads (text and jsonb) are allowed
SELECT pgque.send('q02', 'txt', '{"b": 1,   "a": [1,2]}');
SELECT pgque.send('q02', 'json', '{"b": 1,   "a": [1,2]}'::jsonb);
SELECT pgque.send('q02', 'plain', '  not json, héllo ✓  ');
SELECT pgque.send('q02', 'ext', 'p4', 'e1', 'e2', 'e3', 'e4');
SELECT pgque.send('q02', 'ext', 'p5', extra2 => 'only2', extra4 => 'only4');
SELECT pgque.send('q02', 'ext', '{"k": true}'::jsonb, 'j1', NULL, 'j3');
SELECT pgque.send('q02', 'null', NULL);
SELECT pgque.send('q02', 'nulljson', NULL::jsonb);
SELECT pgque.send('q02', '', '');
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT msg_id, type, payload, payload IS NULL AS null_payload, retry_count,
       extra1, extra2, extra3, extra4
  FROM pgque.receive('q02', 'c', 100);
SELECT pgque.ack(test.piece('q02', 'c'));

-- send errors: unknown queue PQ001, NULL or impossible queue name PQ006,
-- NULL type PQ006 (both payload types)
SELECT test.err($$SELECT pgque.send('q02_nope', 't', 'x')$$);
SELECT test.err($$SELECT pgque.send('q02_nope', 't', '{}'::jsonb)$$);
SELECT test.err($$SELECT pgque.send(NULL, 't', 'x')$$);
SELECT test.err($$SELECT pgque.send('q02 bad', 't', 'x')$$);
SELECT test.err($$SELECT pgque.send('q02', NULL, 'x')$$);
SELECT test.err($$SELECT pgque.send('q02', NULL, '{}'::jsonb)$$);
SELECT test.err($$SELECT pgque.insert_event('q02', NULL, 'x')$$);
-- ... and none of them inserted anything: the next id follows on
SELECT pgque.send('q02', 't', 'after errors');
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT test.drain('q02', 'c');

-- send_batch text[]: ids in input order, one per payload (NULL elements and
-- a non-1 lower bound included); jsonb[]: the same, payloads normalized
SELECT pgque.send_batch('q02', 'bt', ARRAY['one', NULL, 'three', 'four']) AS ids_t \gset
SELECT :'ids_t' AS ids_t;
SELECT pgque.send_batch('q02', 'bj', ARRAY['{"n": 1}', '{"z":0,  "a":2}', 'null', '[3, 2, 1]']::jsonb[]) AS ids_j \gset
SELECT :'ids_j' AS ids_j;
SELECT pgque.send_batch('q02', 'bl', '[5:6]={five,six}'::text[]) AS ids_l \gset
SELECT :'ids_l' AS ids_l;
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
CREATE TEMP TABLE q02_got AS SELECT * FROM pgque.receive('q02', 'c', 100);
SELECT pgque.ack(test.piece('q02', 'c'));
SELECT msg_id, type, payload FROM q02_got ORDER BY msg_id;
-- every id returned by send_batch came back with the payload at its position
WITH sent AS (
    SELECT 'bt' AS type, u.id, u.p FROM unnest(:'ids_t'::bigint[], ARRAY['one', NULL, 'three', 'four']) u(id, p)
    UNION ALL
    SELECT 'bj', u.id, u.p::text FROM unnest(:'ids_j'::bigint[], ARRAY['{"n": 1}', '{"z":0,  "a":2}', 'null', '[3, 2, 1]']::jsonb[]) u(id, p)
    UNION ALL
    SELECT 'bl', u.id, u.p FROM unnest(:'ids_l'::bigint[], ARRAY['five', 'six']) u(id, p))
SELECT count(*) AS sent,
       count(g.msg_id) AS received,
       count(*) FILTER (WHERE g.type = s.type AND g.payload IS NOT DISTINCT FROM s.p) AS matching
  FROM sent s LEFT JOIN q02_got g ON g.msg_id = s.id;
SELECT count(*) AS received_total FROM q02_got;

-- send_batch with an empty array returns '{}', draws no ids, delivers nothing
SELECT pgque.send_batch('q02', 'empty', '{}'::text[]);
SELECT pgque.send_batch('q02', 'empty', '{}'::jsonb[]);
SELECT pgque.send_batch('q02', 'empty', ARRAY[]::text[]);
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT test.ids('q02', 'c');
SELECT ev_new FROM pgque.get_queue_info('q02');

-- send_batch errors: NULL array, 2-D array, NULL type: PQ006; unknown queue: PQ001
SELECT test.err($$SELECT pgque.send_batch('q02', 'b', NULL::text[])$$);
SELECT test.err($$SELECT pgque.send_batch('q02', 'b', NULL::jsonb[])$$);
SELECT test.err($$SELECT pgque.send_batch('q02', 'b', ARRAY[['a', 'b'], ['c', 'd']])$$);
SELECT test.err($$SELECT pgque.send_batch('q02', 'b', ARRAY[['{}', '{}']]::jsonb[])$$);
SELECT test.err($$SELECT pgque.send_batch('q02', NULL, ARRAY['a'])$$);
SELECT test.err($$SELECT pgque.send_batch('q02_nope', 'b', ARRAY['a'])$$);
SELECT test.err($$SELECT pgque.send_batch(NULL, 'b', ARRAY['a'])$$);
-- ... none of them inserted anything
SELECT ev_new FROM pgque.get_queue_info('q02');

-- insert_event (PgQ's name for send), with and without extras
SELECT pgque.insert_event('q02', 'ie', 'no extras');
SELECT pgque.insert_event('q02', 'ie', 'all extras', 'x1', 'x2', 'x3', 'x4');
SELECT pgque.insert_event('q02', 'ie', 'some extras', 'y1', ev_extra3 => 'y3');
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT msg_id, type, payload, extra1, extra2, extra3, extra4 FROM pgque.receive('q02', 'c', 100);
SELECT pgque.ack(test.piece('q02', 'c'));

-- transactional enqueue: a rolled-back send (or send_batch) is never
-- delivered, a committed one is
BEGIN;
SELECT pgque.send('q02', 'tx', 'rolled back');
SELECT pgque.send_batch('q02', 'tx', ARRAY['rolled back too', 'and this']);
ROLLBACK;
BEGIN;
SELECT pgque.send('q02', 'tx', 'committed in a transaction');
SELECT pgque.send_batch('q02', 'tx', ARRAY['committed batch']);
COMMIT;
SELECT pgque.send('q02', 'tx', 'committed alone');
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT msg_id, payload FROM pgque.receive('q02', 'c', 100);
SELECT pgque.ack(test.piece('q02', 'c'));
-- the rolled-back events do not come later either
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT test.ids('q02', 'c');

-- an event whose transaction commits after a tick is not in that tick's
-- batch, but in a later one
SELECT dblink_connect('p02', 'dbname=' || current_database());
SELECT dblink_exec('p02', 'BEGIN');
SELECT id AS late_id FROM dblink('p02', $$SELECT pgque.send('q02', 'late', 'sent before the tick, committed after')$$)
    AS t(id bigint) \gset
SELECT :late_id AS late_id;
SELECT pgque.send('q02', 'early', 'committed before the tick');
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT msg_id, payload FROM pgque.receive('q02', 'c', 100);
SELECT test.batch('q02', 'c') AS b_early \gset
SELECT pgque.ack(test.piece('q02', 'c'));
SELECT dblink_exec('p02', 'COMMIT');
SELECT dblink_disconnect('p02');
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT msg_id, payload FROM pgque.receive('q02', 'c', 100);
SELECT test.batch('q02', 'c') AS b_late \gset
SELECT :b_late <> :b_early AS later_batch;
SELECT pgque.ack(test.piece('q02', 'c'));
-- ... and exactly once
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT test.ids('q02', 'c');

-- invalid JSON fails in the ::jsonb cast (22P02) before pgque is called:
-- nothing is inserted, the next id follows on
SELECT ev_new FROM pgque.get_queue_info('q02');
SELECT test.err($$SELECT pgque.send('q02', 'bad', '{"a": '::jsonb)$$);
SELECT test.err($$SELECT pgque.send_batch('q02', 'bad', ARRAY['{}', '{bad}']::jsonb[])$$);
SELECT ev_new FROM pgque.get_queue_info('q02');
SELECT pgque.send('q02', 'good', '{"a": 1}'::jsonb);
SELECT pgque.force_tick('q02') IS NOT NULL AS ticked;
SELECT msg_id, type, payload FROM pgque.receive('q02', 'c', 100);
SELECT pgque.ack(test.piece('q02', 'c'));

-- clean up
SELECT pgque.drop_queue('q02', true);
SELECT count(*) AS left_over FROM pgque.queue WHERE queue_name LIKE 'q02%';
