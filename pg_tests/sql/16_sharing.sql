-- 16_sharing: several readers of one consumer (16_workers.sql, 07_consume.sql).
--
-- A worker's window is the piece it was opened for, cut from the
-- consumer's stream by rows, so workers share one big transaction; plain receive() on a
-- consumer that workers read is served as the worker '_plain'; a plain
-- batch nobody touched for a lease is taken over by a worker;
-- unregister_worker(release) hands a batch on at once; idle workers are
-- forgotten; two sessions with one worker name never ack for each other;
-- bad arguments.  Leases of 1 microsecond have run out by the next
-- statement, as in 14_workers.

SELECT pgque.create_queue('q16');
SELECT pgque.subscribe('q16', 'c');
-- test.w16(worker, max [, lease]): receive as a worker of q16/c, the ids.
CREATE FUNCTION test.w16(w text, n int, lease interval DEFAULT '1 minute') RETURNS bigint[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(msg_id ORDER BY msg_id), '{}') FROM pgque.receive('q16', 'c', n, w, lease)
$$;
-- test.ack16(worker): ack what the worker (NULL: the consumer) was handed last.
CREATE FUNCTION test.ack16(w text) RETURNS int LANGUAGE sql AS $$
    SELECT pgque.ack(test.piece('q16', 'c', w))
$$;

---------------------------------------------------------------------------
-- One transaction of 100 events, one tick: three workers asking for 10
-- each get different windows of 10, in order, and together every event
-- once.  The consumer's position stays at the tick range's start until
-- the last window of it is handed out.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q16', 't', ARRAY(SELECT 'b' || i FROM generate_series(1, 100) i))) AS sent;
SELECT pgque.force_tick('q16') AS big_tick \gset
SELECT test.w16('w1', 10) AS w1, test.w16('w2', 10) AS w2, test.w16('w3', 10) AS w3;
SELECT count(DISTINCT current_batch) AS windows FROM pgque.get_worker_info('q16', 'c');
SELECT last_tick < :big_tick AS position_not_past_the_tick, current_batch IS NULL AS no_batch_of_its_own
  FROM pgque.get_consumer_info('q16', 'c');
-- an unacked window is handed out again to its worker, bounded to its rows
SELECT test.w16('w2', 50) AS w2_again;
SELECT test.ack16('w1') AS w1_ack, test.ack16('w2') AS w2_ack, test.ack16('w3') AS w3_ack;
-- the rest, in windows of up to 25, until nothing is left
CREATE TEMP TABLE got16 (w text, ids bigint[]);
DO $$
DECLARE
    w   text;
    ids bigint[];
    idle int := 0;
BEGIN
    WHILE idle < 3 LOOP
        FOREACH w IN ARRAY ARRAY['w1', 'w2', 'w3'] LOOP
            ids := test.w16(w, 25);
            IF cardinality(ids) = 0 THEN
                idle := idle + 1;
            ELSE
                idle := 0;
                INSERT INTO got16 VALUES (w, ids);
                PERFORM test.ack16(w);
            END IF;
        END LOOP;
    END LOOP;
END
$$;
SELECT count(*) AS windows, max(cardinality(ids)) AS biggest, count(DISTINCT w) AS workers,
       (SELECT array_agg(x ORDER BY x) FROM got16, unnest(ids) x) = ARRAY(SELECT generate_series(31, 100))::bigint[]
           AS the_other_70_once
  FROM got16;
SELECT last_tick = :big_tick AS position_at_the_tick, next_tick IS NULL AS range_done
  FROM pgque.get_consumer_info('q16', 'c');

---------------------------------------------------------------------------
-- A window cut from a tick range is taken over like any other: from what
-- its worker acknowledged, bounded to its rows.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q16', 't', ARRAY(SELECT 'k' || i FROM generate_series(1, 30) i))) AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT test.w16('w1', 10) AS w1_window;
SELECT cardinality(test.w16('w2', 10)) AS w2_window;
SELECT test.ack16('w1') AS w1_ack;
SELECT test.w16('w1', 4, '1 microsecond') AS w1_next_then_stops;
SELECT test.w16('w3', 100) AS w3_takes_over_w1;
SELECT test.ack16('w3') AS w3_ack, test.ack16('w2') AS w2_ack;
SELECT test.w16('w3', 100) AS w3_rest;
SELECT test.ack16('w3') AS w3_ack;
SELECT count(*) AS nothing_left FROM pgque.peek('q16', 'c');

---------------------------------------------------------------------------
-- Plain receive() while workers hold batches: it is served as the worker
-- '_plain' (its own window, from the consumer's stream, never one of the
-- workers'); next_batch() refuses with PQ025 meanwhile.  Once no worker
-- holds a batch, plain receive() opens the consumer's own batches again.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q16', 't', ARRAY(SELECT 'p' || i FROM generate_series(1, 12) i))) AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT test.w16('w1', 4) AS w1;
SELECT array_agg(payload ORDER BY msg_id) AS plain FROM pgque.receive('q16', 'c', 4);
SELECT worker_name, current_batch IS NOT NULL AS holds FROM pgque.get_worker_info('q16', 'c') ORDER BY 1;
SELECT regexp_replace(test.err($$SELECT pgque.next_batch('q16', 'c')$$), '''c''', 'C') AS next_batch_refused;
SELECT test.ack16('_plain') AS plain_ack, test.ack16('w1') AS w1_ack;
SELECT array_agg(payload ORDER BY msg_id) AS plain_rest FROM pgque.receive('q16', 'c', 100);
SELECT test.ack16('_plain') AS plain_ack;
SELECT pgque.send('q16', 't', 'own') IS NOT NULL AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS plain_own_batch FROM pgque.receive('q16', 'c', 100);
SELECT test.batch('q16', 'c') IS NOT NULL AS consumer_batch_open;
SELECT test.ack16(NULL) AS ack;

---------------------------------------------------------------------------
-- A plain batch left open: workers get PQ025 while its reader is active,
-- and take it over (from its acknowledged position) once nobody touched it
-- for their lease; the plain reader's late ack then fails with PQ028.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q16', 't', ARRAY['s1', 's2', 's3', 's4'])) AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS plain_first, min(batch_id) AS plain_piece
  FROM pgque.receive('q16', 'c', 2) \gset
SELECT :'plain_first' AS plain_first, test.ack16(NULL) AS ack;
SELECT array_agg(payload ORDER BY msg_id) AS plain_second, min(batch_id) AS plain_piece
  FROM pgque.receive('q16', 'c', 1) \gset
SELECT regexp_replace(test.err($$SELECT pgque.receive('q16', 'c', 10, 'w1')$$), ' \d+', ' N', 'g') AS reader_active;
SELECT array_agg(payload ORDER BY msg_id) AS w1_took_over FROM pgque.receive('q16', 'c', 10, 'w1', '1 microsecond');
SELECT test.batch('q16', 'c') IS NULL AS consumer_batch_gone;
SELECT regexp_replace(test.err(format('SELECT pgque.ack(%s)', :plain_piece)), 'piece \d+', 'piece N') AS plain_late_ack;
SELECT pgque.heartbeat(:plain_piece) AS plain_late_heartbeat;
SELECT test.ack16('w1') AS w1_ack;
SELECT count(*) AS nothing_left FROM pgque.peek('q16', 'c');

---------------------------------------------------------------------------
-- unregister_worker: PQ026 while the worker holds a batch; with release it
-- gives the batch up at once (another worker takes it from the acked
-- position, without waiting for the lease) and is forgotten later.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q16', 't', ARRAY['u1', 'u2', 'u3'])) AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS w1_got FROM pgque.receive('q16', 'c', 2, 'w1');
SELECT array_agg(payload ORDER BY msg_id) AS w1_again_smaller FROM pgque.receive('q16', 'c', 1, 'w1');
SELECT test.ack16('w1') AS w1_ack;
SELECT regexp_replace(test.err($$SELECT pgque.unregister_worker('q16', 'c', 'w1')$$), ' \d+', ' N', 'g') AS holds;
SELECT pgque.unregister_worker('q16', 'c', 'w1', release => true) AS released;
SELECT lease_left <= '0' AS lease_over FROM pgque.get_worker_info('q16', 'c') WHERE worker_name = 'w1';
SELECT array_agg(payload ORDER BY msg_id) AS w2_took_over FROM pgque.receive('q16', 'c', 10, 'w2');
SELECT test.ack16('w2') AS w2_ack;
SELECT array_agg(payload ORDER BY msg_id) AS w2_rest FROM pgque.receive('q16', 'c', 10, 'w2');
SELECT test.ack16('w2') AS w2_ack;
SELECT pgque.unregister_worker('q16', 'c', 'w2') AS idle_unregistered;
SELECT pgque.unregister_worker('q16', 'c', 'w2') AS already_gone;
-- idle workers are forgotten (maint() forgets those idle for an hour)
SELECT pgque._forget_idle_workers('0 seconds') >= 2 AS forgot;
SELECT worker_name FROM pgque.get_worker_info('q16', 'c') ORDER BY 1;
-- a worker that is never handed anything leaves no row behind
SELECT count(*) AS nothing FROM pgque.receive('q16', 'c', 10, 'never');
SELECT count(*) AS no_row FROM pgque.get_worker_info('q16', 'c') WHERE worker_name = 'never';

---------------------------------------------------------------------------
-- get_consumer_info counts what workers hold: a window handed out and not
-- acknowledged keeps the consumer pending, lagging and with a batch age,
-- after the consumer's own position has moved past it; a worker whose
-- window is taken over keeps its last_seen.
---------------------------------------------------------------------------
SELECT pgque.send('q16', 't', 'held') IS NOT NULL AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS w1_holds FROM pgque.receive('q16', 'c', 10, 'w1', '1 microsecond');
SELECT next_tick IS NULL AS range_cut_to_its_end, pending_events, lag > '0' AS lagging,
       batch_age IS NOT NULL AS batch_age_set, worker_batches, current_batch IS NULL AS no_batch_of_its_own
  FROM pgque.get_consumer_info('q16', 'c');
SELECT last_seen AS w1_seen FROM pgque.get_worker_info('q16', 'c') WHERE worker_name = 'w1' \gset
SELECT pg_sleep(0.05);
SELECT count(*) AS w2_took_over FROM pgque.receive('q16', 'c', 10, 'w2');
SELECT last_seen >= :'w1_seen'::interval + interval '40 milliseconds' AS w1_last_seen_kept
  FROM pgque.get_worker_info('q16', 'c') WHERE worker_name = 'w1';
SELECT test.ack16('w2') AS w2_ack;
SELECT pending_events, lag, batch_age, worker_batches FROM pgque.get_consumer_info('q16', 'c');

---------------------------------------------------------------------------
-- Two sessions using one worker name (a misconfigured deployment): each
-- ack covers only its own piece, as for plain readers.  The window is the
-- four rows of the first receive; a then gets three of them, b all four.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q16', 't', ARRAY['t1', 't2', 't3', 't4'])) AS sent;
SELECT pgque.force_tick('q16') IS NOT NULL AS ticked;
SELECT count(*) AS window FROM pgque.receive('q16', 'c', 4, 'twin');
SELECT min(batch_id) AS pa FROM pgque.receive('q16', 'c', 3, 'twin') \gset
SELECT min(batch_id) AS pb FROM pgque.receive('q16', 'c', 4, 'twin') \gset
SELECT pgque.ack(:pa) AS a_ack;
SELECT array_agg(payload ORDER BY msg_id) AS still_there FROM pgque.peek('q16', 'c');
SELECT pgque.ack(:pb) AS b_ack, pgque.ack(:pa) AS a_again;
SELECT count(*) AS nothing_left FROM pgque.receive('q16', 'c', 10, 'twin');

---------------------------------------------------------------------------
-- Bad arguments: PQ006 names the value; nothing is handed out.
---------------------------------------------------------------------------
SELECT test.err($$SELECT pgque.receive('q16', 'c', 1, repeat('w', 64))$$) AS long_worker;
SELECT test.err($$SELECT pgque.receive('q16', 'c', 1, '_plain')$$) AS reserved_worker;
SELECT test.err($$SELECT pgque.receive('q16', 'c', 1, '')$$) AS empty_worker;
SELECT test.err($$SELECT pgque.receive('q16', 'c', 1, 'w1', '-1 second')$$) AS negative_lease;
SELECT test.err($$SELECT pgque.receive('q16', 'c', 1, 'w1', '2 days')$$) AS lease_too_long;
SELECT test.err($$SELECT pgque.heartbeat(1, '0 seconds')$$) AS zero_heartbeat;
SELECT test.err($$SELECT pgque.heartbeat(NULL)$$) AS null_heartbeat;
SELECT pgque.heartbeat(-5) AS unknown_piece;
SELECT test.err($$SELECT pgque.unregister_worker('q16', 'c', NULL)$$) AS null_unregister;
SELECT test.err($$SELECT * FROM pgque.peek('q16', 'c', 0)$$) AS zero_peek;
SELECT test.err($$SELECT * FROM pgque.peek('q16', 'nobody')$$) AS unknown_consumer_peek;
SELECT count(*) AS huge_max FROM pgque.receive('q16', 'c', 2147483647, 'w1');

DROP FUNCTION test.w16(text, int, interval), test.ack16(text);
SELECT pgque.drop_queue('q16', true);
