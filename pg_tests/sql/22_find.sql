-- 22_find: find_events (12_peek.sql).  It lists what was sent to a queue,
-- newest first, whether consumers got it or not, by type; with
-- this_transaction only the calling transaction's sends; delayed events not
-- yet due with their deliver_at, and once published only once; never
-- retries or replays; other queues' events never; bad arguments PQ006; a
-- role that may not consume from the queue 42501.
SELECT pgque.create_queue('q22');
SELECT pgque.create_queue('q22.other');
SELECT pgque.subscribe('q22', 'c');
SELECT pgque.send('q22', 'a', '1') AS a1 \gset
SELECT pgque.send('q22', 'b', '2') AS b2 \gset
SELECT pgque.send('q22.other', 'a', 'other') IS NOT NULL AS other_sent;
SELECT pgque.send_at('q22', 'd', '3', now() + interval '1 hour') AS d3 \gset
SELECT msg_id = :a1 AS is_a1, msg_id = :b2 AS is_b2, msg_id = :d3 AS is_d3, type, payload,
       deliver_at IS NOT NULL AS delayed, created_at <= now() AS created_past
  FROM pgque.find_events('q22');
SELECT msg_id = :a1 AS is_a1, payload FROM pgque.find_events('q22', 'a');
SELECT count(*) AS limited FROM pgque.find_events('q22', max_return => 1);
-- consumed events are still listed; a retry is not a send
SELECT pgque.force_tick('q22') IS NOT NULL AS ticked;
SELECT array_agg(msg_id ORDER BY msg_id) = ARRAY[:a1, :b2]::bigint[] AS received, min(batch_id) AS piece
  FROM pgque.receive('q22', 'c', 10) \gset
SELECT :'received' AS received;
SELECT pgque.nack(:piece, :a1, '0', 'again') AS nacked;
SELECT pgque.ack(:piece) AS acked;
SELECT pgque.maint_retry_events() AS retries_moved;
SELECT count(*) AS retry_in_event_table FROM pgque.event e JOIN pgque.queue q ON q.queue_name = 'q22'
 WHERE e.ev_slot >= q.queue_slot AND e.ev_slot < q.queue_slot + q.queue_ntables AND e.ev_retry IS NOT NULL;
SELECT type, payload FROM pgque.find_events('q22') ORDER BY msg_id;
-- only this transaction's sends; nothing before it writes; a rolled-back
-- send is gone
BEGIN;
SELECT count(*) AS none_yet FROM pgque.find_events('q22', this_transaction => true);
SELECT pgque.send('q22', 'tx', 'mine') AS mine \gset
SELECT pgque.send_at('q22', 'txd', 'later', now() + interval '1 hour') IS NOT NULL AS mine_delayed;
SELECT type, payload, deliver_at IS NOT NULL AS delayed FROM pgque.find_events('q22', this_transaction => true);
SELECT count(*) AS all_seen FROM pgque.find_events('q22');
ROLLBACK;
SELECT count(*) AS after_rollback FROM pgque.find_events('q22', 'tx');
-- a delayed event, once published, is listed once, without deliver_at
SELECT pgque.send_at('q22', 'soon', 's', clock_timestamp() + interval '100 milliseconds') AS soon,
       clock_timestamp() + interval '100 milliseconds' AS due \gset
SELECT pg_sleep_until(:'due');
SELECT pgque.ticker() IS NOT NULL AS ticked;
SELECT count(*) AS listed, bool_and(deliver_at IS NULL) AS published FROM pgque.find_events('q22', 'soon');
-- bad arguments, unknown queues, other roles
SELECT test.err($$SELECT * FROM pgque.find_events('q22', max_return => 0)$$) AS max_zero;
SELECT test.err($$SELECT * FROM pgque.find_events('q22', max_return => NULL)$$) AS max_null;
SELECT test.err($$SELECT * FROM pgque.find_events('q22', this_transaction => NULL)$$) AS tx_null;
SELECT test.err($$SELECT * FROM pgque.find_events('nope')$$) AS unknown;
SELECT test.err($$SELECT * FROM pgque.find_events(NULL)$$) AS null_queue;
CREATE ROLE t22_writer IN ROLE pgque_writer;
GRANT USAGE ON SCHEMA test TO t22_writer;
SET ROLE t22_writer;
SELECT test.err($$SELECT * FROM pgque.find_events('q22')$$) AS writer;
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM t22_writer;
DROP ROLE t22_writer;
SELECT pgque.drop_queue('q22', true), pgque.drop_queue('q22.other', true);
