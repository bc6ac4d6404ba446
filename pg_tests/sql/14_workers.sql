-- 14_workers: cooperative workers of one consumer (16_workers.sql).
--
-- Workers take different batches; a window covers about max_return events,
-- so a backlog is shared; a batch whose lease ran out is taken over (from
-- the acknowledged position, under a new batch id) and its old worker's ack
-- and heartbeat report 0; retries and dead letters belong to the consumer;
-- a consumer is read by its workers or plainly, never both at once; idle
-- workers do not pin rotation; errors.
--
-- Leases of 1 microsecond have run out by the next statement (now() is the
-- statement's transaction start), so no test waits for a lease; the
-- rotation part sleeps 10 ms for the 1 ms rotation period, as 07_rotation.
-- Batch ids depend on the tests before: messages show them as N.

SELECT pgque.create_queue('q14');
SELECT pgque.subscribe('q14', 'c');
SELECT pgque.subscribe('q14', 'plain');
SELECT queue_id AS qid FROM pgque.queue WHERE queue_name = 'q14' \gset

-- test.wids(worker, max [, lease]): receive as a worker of q14/c.
CREATE FUNCTION test.wids(w text, n int, lease interval DEFAULT '1 minute') RETURNS bigint[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(msg_id ORDER BY msg_id), '{}') FROM pgque.receive('q14', 'c', n, w, lease)
$$;
-- test.wbatch(worker): the batch a worker of q14/c holds.
CREATE FUNCTION test.wbatch(w text) RETURNS bigint LANGUAGE sql AS $$
    SELECT current_batch FROM pgque.get_worker_info('q14', 'c') WHERE worker_name = w
$$;

---------------------------------------------------------------------------
-- Three ticks of two events: windows of max_return = 2 give each worker a
-- different tick; the plain consumer gets all six in one batch.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q14', 't', ARRAY['a1', 'a2'])) AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT cardinality(pgque.send_batch('q14', 't', ARRAY['b1', 'b2'])) AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT cardinality(pgque.send_batch('q14', 't', ARRAY['c1', 'c2'])) AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;

SELECT array_agg(payload ORDER BY msg_id) AS w1 FROM pgque.receive('q14', 'c', 2, 'w1');
SELECT array_agg(payload ORDER BY msg_id) AS w2 FROM pgque.receive('q14', 'c', 2, 'w2');
-- w1 has not acked: it gets its own piece again, not the next window
SELECT array_agg(payload ORDER BY msg_id) AS w1_again FROM pgque.receive('q14', 'c', 2, 'w1');
SELECT test.wbatch('w1') <> test.wbatch('w2') AS different_batches;
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT test.wbatch('w1') IS NULL AS w1_finished;
SELECT array_agg(payload ORDER BY msg_id) AS w1_next FROM pgque.receive('q14', 'c', 2, 'w1');
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack, pgque.ack(test.piece('q14', 'c', 'w2')) AS w2_ack;
SELECT count(*) AS nothing_left FROM pgque.receive('q14', 'c', 2, 'w3');
SELECT array_agg(payload ORDER BY msg_id) AS plain FROM pgque.receive('q14', 'plain', 100);
SELECT pgque.ack(test.piece('q14', 'plain')) AS plain_ack;

SELECT worker_name, current_batch IS NULL AS idle, lease_left IS NULL AS no_lease,
       last_seen >= interval '0' AS seen
  FROM pgque.get_worker_info('q14', 'c');
-- workers are not consumers of their own
SELECT consumer_name FROM pgque.get_consumer_info('q14') ORDER BY 1;
SELECT consumers FROM pgque.get_queue_info('q14');

---------------------------------------------------------------------------
-- Lease takeover.  w1 is handed a window of three (a window is the piece
-- it was opened for), receives it again in a smaller piece, acks that and
-- stops; once its lease has run out, w2 gets the window from the acked
-- position, under a new batch id; w1's ack and nack then fail with PQ028
-- (nothing of what w2 holds is acknowledged), its heartbeat reports 0.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q14', 't', ARRAY['d1', 'd2', 'd3', 'd4', 'd5'])) AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS w1_first FROM pgque.receive('q14', 'c', 3, 'w1');
SELECT test.wbatch('w1') AS w1_batch \gset
SELECT array_agg(payload ORDER BY msg_id) AS w1_smaller FROM pgque.receive('q14', 'c', 1, 'w1', '1 microsecond');
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT array_agg(payload ORDER BY msg_id) AS w1_second FROM pgque.receive('q14', 'c', 1, 'w1', '1 microsecond');
SELECT test.piece('q14', 'c', 'w1') AS w1_piece \gset
SELECT lease_left < interval '0' AS expired FROM pgque.get_worker_info('q14', 'c') WHERE worker_name = 'w1';
SELECT array_agg(payload ORDER BY msg_id) AS w2_took_over FROM pgque.receive('q14', 'c', 10, 'w2');
SELECT test.wbatch('w2') <> :w1_batch AS new_batch_id, test.wbatch('w1') IS NULL AS w1_lost_it;
SELECT regexp_replace(test.err(format('SELECT pgque.ack(%s)', :w1_piece)), 'piece \d+', 'piece N') AS late_ack;
SELECT pgque.heartbeat(:w1_piece) AS late_heartbeat;
SELECT regexp_replace(test.err(format('SELECT pgque.nack(%s, 1)', :w1_piece)), 'piece \d+', 'piece N') AS late_nack;
SELECT pgque.ack(test.piece('q14', 'c', 'w2')) AS w2_ack;
SELECT array_agg(payload ORDER BY msg_id) AS w1_rest FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT count(*) AS nothing_left FROM pgque.receive('q14', 'c', 10, 'w1');

-- a heartbeat keeps the batch: w1's lease is renewed, so w2 takes the next
-- window instead
SELECT cardinality(pgque.send_batch('q14', 't', ARRAY['e1', 'e2'])) AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS w1_e FROM pgque.receive('q14', 'c', 2, 'w1', '1 microsecond');
SELECT pgque.heartbeat(test.piece('q14', 'c', 'w1'), '1 minute') AS heartbeat;
SELECT count(*) AS w2_nothing FROM pgque.receive('q14', 'c', 2, 'w2');
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
-- a plain consumer's batch has no lease: heartbeat changes nothing, says 1
SELECT pgque.send('q14', 't', 'f1') IS NOT NULL AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT count(*) AS plain_got FROM pgque.receive('q14', 'plain', 100);
SELECT pgque.heartbeat(test.piece('q14', 'plain')) AS plain_heartbeat;
SELECT cardinality(test.drain('q14', 'plain')) AS plain_rest;
SELECT cardinality(test.wids('w1', 10)) AS w1_f;
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;

---------------------------------------------------------------------------
-- Retries belong to the consumer: a message nacked by w1 comes back to
-- whichever worker takes the window that holds it; dead letters name 'c'.
---------------------------------------------------------------------------
SELECT pgque.set_queue_config('q14', 'max_retries', '1');
SELECT pgque.send('q14', 't', 'flaky') AS flaky \gset
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT test.wids('w1', 10) = ARRAY[:flaky]::bigint[] AS w1_got_it;
SELECT pgque.nack(test.piece('q14', 'c', 'w1'), :flaky, '0 seconds', 'boom') AS outcome;
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT msg_id = :flaky AS same_msg, retry_count FROM pgque.receive('q14', 'c', 10, 'w2');
SELECT pgque.nack(test.piece('q14', 'c', 'w2'), :flaky, NULL, 'boom again') AS outcome;
SELECT pgque.ack(test.piece('q14', 'c', 'w2')) AS w2_ack;
SELECT consumer_name, reason FROM pgque.dlq_list('q14') WHERE msg_id = :flaky;
-- the plain consumer got the original once and no retry
SELECT cardinality(test.drain('q14', 'plain')) AS plain_got;

---------------------------------------------------------------------------
-- A consumer read plainly and by workers: plain batches start where the
-- workers' windows end, so nothing is read twice; workers cannot start while
-- a plain batch is open (PQ025).
---------------------------------------------------------------------------
SELECT pgque.send('q14', 't', 'g1') IS NOT NULL AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS w1_g FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT count(*) AS plain_nothing FROM pgque.receive('q14', 'c', 10);
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT pgque.send('q14', 't', 'g2') IS NOT NULL AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS plain_g FROM pgque.receive('q14', 'c', 10);
SELECT regexp_replace(test.err($$SELECT * FROM pgque.receive('q14', 'c', 10, 'w1')$$), 'batch \d+', 'batch N') AS worker_while_plain;
SELECT cardinality(test.drain('q14', 'c')) AS plain_rest;
SELECT cardinality(test.drain('q14', 'plain')) AS plain_consumer;

---------------------------------------------------------------------------
-- No loss, no duplicate: 40 ticks of 3 events read by three workers taking
-- turns, each acking every other call; together they get every event once.
---------------------------------------------------------------------------
CREATE TEMP TABLE w_sent (id bigint);
CREATE TEMP TABLE w_got (wk text, id bigint);
-- ticks are taken in transactions of their own (output: w_sent below)
\o /dev/null
SELECT 'INSERT INTO w_sent SELECT unnest(pgque.send_batch(''q14'', ''t'', ARRAY[''x'', ''y'', ''z'']))',
       'SELECT pgque.force_tick(''q14'')'
  FROM generate_series(1, 40) \gexec
\o
DO $$
DECLARE
    w    text;
    b    bigint;
    turn int := 0;
    idle int := 0;
BEGIN
    WHILE idle < 3 LOOP
        turn := turn + 1;
        w := 'w' || (turn % 3 + 1);
        b := NULL;
        -- unacked pieces come again: record a message once per worker batch
        INSERT INTO w_got SELECT w, m.msg_id FROM pgque.receive('q14', 'c', 4, w) m
         WHERE NOT EXISTS (SELECT 1 FROM w_got g WHERE g.wk = w AND g.id = m.msg_id);
        b := test.piece('q14', 'c', w);
        IF b IS NULL THEN
            idle := idle + 1;
        ELSE
            idle := 0;
            IF turn % 2 = 0 THEN
                PERFORM pgque.ack(b);
            END IF;
        END IF;
    END LOOP;
    -- finish what is still held
    FOR w IN SELECT worker_name FROM pgque.get_worker_info('q14', 'c') WHERE current_batch IS NOT NULL LOOP
        PERFORM pgque.ack(test.piece('q14', 'c', w));
    END LOOP;
END
$$;
SELECT (SELECT count(*) FROM w_sent) AS sent, count(*) AS got, count(DISTINCT id) AS distinct_got,
       count(DISTINCT wk) AS workers_used,
       (SELECT count(*) FROM w_sent s WHERE NOT EXISTS (SELECT 1 FROM w_got g WHERE g.id = s.id)) AS lost
  FROM w_got;
SELECT count(*) AS nothing_left FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT cardinality(test.drain('q14', 'plain')) AS plain_got;

---------------------------------------------------------------------------
-- Rotation: an idle worker pins nothing, a worker holding a batch does.
---------------------------------------------------------------------------
SELECT pgque.set_queue_config('q14', 'rotation_period', '1 millisecond');
-- rotate until the queue has switched twice: needs every position past post
CREATE FUNCTION test.rotate14() RETURNS bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque.maint_rotate_tables_step1('q14');
    RETURN (SELECT queue_gen FROM pgque.queue WHERE queue_name = 'q14');
END
$$;
SELECT queue_gen AS gen0 FROM pgque.queue WHERE queue_name = 'q14' \gset
SELECT pg_sleep(0.01);
SELECT test.rotate14() = :gen0 + 1 AS switched;
SELECT pgque.maint_rotate_tables_step2() AS step2;
SELECT pgque.send('q14', 't', 'h1') IS NOT NULL AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
-- w2 holds a batch from before post: no switch
SELECT cardinality(test.wids('w2', 10)) AS w2_h;
SELECT cardinality(test.drain('q14', 'plain')) AS plain_h;
SELECT pg_sleep(0.01);
SELECT test.rotate14() = :gen0 + 1 AS held_by_w2;
SELECT pgque.ack(test.piece('q14', 'c', 'w2')) AS w2_ack;
-- the consumer is past post now (w2's window moved it); w1 and w3 are idle
-- with old positions and do not count
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT count(*) AS nothing FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT pg_sleep(0.01);
SELECT test.rotate14() = :gen0 + 2 AS switched_again;

---------------------------------------------------------------------------
-- A paused queue hands workers nothing, and loses nothing.
---------------------------------------------------------------------------
SELECT pgque.send('q14', 't', 'p1') IS NOT NULL AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT pgque.pause_queue('q14');
SELECT count(*) AS paused_nothing FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT pgque.resume_queue('q14');
SELECT array_agg(payload) AS w1_p FROM pgque.receive('q14', 'c', 10, 'w1', '1 microsecond');
SELECT pgque.pause_queue('q14');
-- w1's lease ran out: w2 gets nothing while paused (though it may take the
-- batch over), and after resume the message is still there
SELECT count(*) AS paused_nothing FROM pgque.receive('q14', 'c', 10, 'w2');
SELECT pgque.resume_queue('q14');
SELECT array_agg(payload) AS w2_p FROM pgque.receive('q14', 'c', 10, 'w2');
SELECT pgque.ack(test.piece('q14', 'c', 'w2')) AS w2_ack;
SELECT cardinality(test.drain('q14', 'plain')) AS plain_p;

---------------------------------------------------------------------------
-- Dedup: an event is pending while a worker holds the batch it is in, even
-- though the consumer's position has moved past that batch.
---------------------------------------------------------------------------
SELECT pgque.send_unique('q14', 't', 'u1', 'k1') AS u1 \gset
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS w1_u FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT cardinality(test.drain('q14', 'plain')) AS plain_u;
SELECT pgque.send_unique('q14', 't', 'u1 again', 'k1') = :u1 AS same_while_w1_holds;
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT pgque.send_unique('q14', 't', 'u2', 'k1') <> :u1 AS new_once_finished;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS w1_u2 FROM pgque.receive('q14', 'c', 10, 'w1');
SELECT pgque.ack(test.piece('q14', 'c', 'w1')) AS w1_ack;
SELECT cardinality(test.drain('q14', 'plain')) AS plain_u2;

---------------------------------------------------------------------------
-- Errors and bookkeeping.
---------------------------------------------------------------------------
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'c', 10, '')$$) AS empty_worker;
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'c', 10, 'a/b')$$) AS bad_worker;
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'c', 10, repeat('w', 64))$$) AS long_worker;
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'c', 10, 'w1', NULL)$$) AS null_lease_means_30s;
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'c', 10, 'w1', '-1 second')$$) AS negative_lease;
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'nobody', 10, 'w1')$$) AS unknown_consumer;
SELECT test.err($$SELECT * FROM pgque.receive('q14_nope', 'c', 10, 'w1')$$) AS unknown_queue;
-- a worker's row is not a consumer
SELECT test.err($$SELECT * FROM pgque.receive('q14', 'c/w1', 10)$$) AS worker_as_consumer;
SELECT test.err($$SELECT pgque.heartbeat(NULL)$$) AS null_batch;
SELECT test.err($$SELECT pgque.heartbeat(1, '0 seconds')$$) AS zero_lease;
SELECT pgque.heartbeat(-1) AS unknown_batch;
SELECT test.err($$SELECT * FROM pgque.get_worker_info('q14', 'nobody')$$) AS info_unknown;
-- unregister: refused while it holds a batch, then done; unknown names give 0
SELECT pgque.send('q14', 't', 'i1') IS NOT NULL AS sent;
SELECT pgque.force_tick('q14') IS NOT NULL AS ticked;
SELECT test.wids('w3', 10) AS w3_i \gset
SELECT cardinality(:'w3_i'::bigint[]) AS w3_got;
SELECT regexp_replace(test.err($$SELECT pgque.unregister_worker('q14', 'c', 'w3')$$), 'batch \d+', 'batch N') AS holds_batch;
SELECT pgque.ack(test.piece('q14', 'c', 'w3')) AS w3_ack;
SELECT test.wbatch('w3') IS NULL AS w3_finished;
SELECT pgque.unregister_worker('q14', 'c', 'w3') AS unregistered,
       pgque.unregister_worker('q14', 'c', 'w3') AS again,
       pgque.unregister_worker('q14', 'c', 'never') AS never;
SELECT array_agg(worker_name ORDER BY worker_name) AS workers FROM pgque.get_worker_info('q14', 'c');
-- drop_queue names consumers only; unsubscribe takes the workers along
SELECT test.err($$SELECT pgque.drop_queue('q14')$$) AS drop_refused;
SELECT pgque.unsubscribe('q14', 'c') AS unsubscribed;
SELECT count(*) AS worker_rows FROM pgque.consumer WHERE sub_queue = :qid AND sub_parent IS NOT NULL;
SELECT pgque.drop_queue('q14', true);
DROP FUNCTION test.wids(text, int, interval), test.wbatch(text), test.rotate14();
