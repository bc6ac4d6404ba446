-- 06_retry_dlq: nack -> retry -> dead letter, the retry mover, backoff, the
-- dead-letter store (dlq_list, dlq_replay, dlq_purge) and PgQ's event_retry,
-- retry jitter and per-send max_retries.
-- A retried copy is seen only by the consumer that failed it (fan-out stays
-- intact); a replayed dead letter goes back to that consumer only.
--
-- Batch ids and times are never printed: messages naming a batch id are
-- masked by pg_temp.e, due times are compared with now().

CREATE FUNCTION pg_temp.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN r ELSE left(r, 7) || regexp_replace(substr(r, 8), '[0-9]+', 'N', 'g') END
      FROM test.err(sql) r
$$;
-- pg_temp.take(queue, consumer): receive and ack until nothing is left;
-- every message received, in delivery order.
CREATE FUNCTION pg_temp.take(q text, c text)
RETURNS TABLE (msg_id bigint, retry_count int, payload text) LANGUAGE plpgsql AS $$
DECLARE
    m pgque.message;
    b bigint;
BEGIN
    LOOP
        b := NULL;
        FOR m IN SELECT * FROM pgque.receive(q, c, 100) LOOP
            msg_id := m.msg_id; retry_count := m.retry_count; payload := m.payload;
            RETURN NEXT;
            b := m.batch_id;
        END LOOP;
        EXIT WHEN b IS NULL;
        PERFORM pgque.ack(b);
    END LOOP;
END
$$;
-- what consumer b (a bystander on the same queue) received over the file
CREATE TEMP TABLE bgot (msg_id bigint, retry_count int, payload text);

SELECT pgque.create_queue('q06_a');
SELECT pgque.subscribe('q06_a', c) FROM unnest(ARRAY['a', 'b', 'b2']) c;
SELECT pgque.set_queue_config('q06_a', 'max_retries', '2');
SELECT pgque.set_queue_config('q06_a', 'retry_backoff_base', '0');
SELECT sub_id AS a_sub FROM pgque.subscription
 WHERE sub_consumer = 'a' AND sub_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q06_a') \gset

---------------------------------------------------------------------------
-- nack -> 'retry'; the mover re-inserts it (due at once with base 0); the
-- consumer gets the same msg_id again with retry_count 1, then 2; the third
-- nack dead-letters it (max_retries 2).  Repeating a nack gives the same
-- answer and queues one retry only.
---------------------------------------------------------------------------
SELECT pgque.send('q06_a', 'job', 'job1');
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, batch_id AS b, retry_count IS NULL AS first_delivery FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT :msg_id AS msg_id, :'first_delivery' AS first_delivery;
SELECT pgque.nack(:b, 1, NULL, 'boom') AS nack;
SELECT pgque.nack(:b, 1, '1 hour', 'boom again') AS nack_repeated;
SELECT count(*) AS retry_rows, bool_and(rq_due <= now()) AS first_nack_wins, min(ev_retry) AS ev_retry
  FROM pgque.retry_queue WHERE rq_sub = :a_sub;
SELECT retry_pending FROM pgque.get_queue_info('q06_a');
SELECT pgque.ack(:b) AS ack;
-- the bystander gets the original once
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');
-- not moved yet: nothing for a
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT count(*) AS before_move FROM pgque.receive('q06_a', 'a', 10);
SELECT pgque.maint() >= 1 AS maint_moved;
SELECT retry_pending FROM pgque.get_queue_info('q06_a');
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, batch_id AS b FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT msg_id, type, payload, retry_count FROM pgque.receive('q06_a', 'a', 10);
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');
SELECT pgque.nack(:b, 1, NULL, 'boom 2') AS nack;
SELECT pgque.ack(:b) AS ack;
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, batch_id AS b FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT msg_id, type, payload, retry_count FROM pgque.receive('q06_a', 'a', 10);
SELECT pgque.nack(:b, 1, NULL, 'gave up') AS nack;
SELECT pgque.nack(:b, 1, NULL, 'gave up twice') AS nack_repeated;
SELECT pgque.ack(:b) AS ack;
SELECT count(*) AS retry_rows FROM pgque.retry_queue WHERE rq_sub = :a_sub;
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT count(*) AS nothing_for_a FROM pgque.receive('q06_a', 'a', 10);
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');

-- the dead letter: one row, with the consumer, the reason of the last nack,
-- the event and how often it had been retried
SELECT consumer_name, reason, msg_id, retry_count, type, payload, extra1,
       dead_at IS NOT NULL AS has_dead_at, created_at IS NOT NULL AS has_created_at
  FROM pgque.dlq_list('q06_a');
SELECT dead_letters, retry_pending FROM pgque.get_queue_info('q06_a');
SELECT consumer_name, dead_letters, retry_pending FROM pgque.get_consumer_info('q06_a');

---------------------------------------------------------------------------
-- dlq_replay: returns the msg_id and delivers it again to the consumer that
-- dead-lettered it only, as a first delivery (retry_count NULL); the dead
-- letter is removed.
---------------------------------------------------------------------------
SELECT dl_id FROM pgque.dlq_list('q06_a') \gset
SELECT pgque.dlq_replay(:dl_id) AS replayed_msg_id;
SELECT count(*) AS dead_left FROM pgque.dlq_list('q06_a');
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, payload, retry_count FROM pg_temp.take('q06_a', 'a');
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');
-- replaying it again: it is gone
SELECT pg_temp.e(format('SELECT pgque.dlq_replay(%s)', :dl_id));
SELECT test.err('SELECT pgque.dlq_replay(987654321)');
SELECT test.err('SELECT pgque.dlq_replay(NULL)');

---------------------------------------------------------------------------
-- max_retries 0: the first nack dead-letters.  A dead letter of a consumer
-- that unsubscribed is kept, but cannot be replayed (PQ003).  dlq_purge
-- removes dead letters older than its argument ('0': all) and counts them.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q06_z');
SELECT pgque.subscribe('q06_z', c) FROM unnest(ARRAY['gone', 'stays']) c;
SELECT pgque.set_queue_config('q06_z', 'max_retries', '0');
SELECT pgque.send('q06_z', 't', 'z' || i) FROM generate_series(1, 3) i;
SELECT pgque.force_tick('q06_z') IS NOT NULL AS ticked;
SELECT batch_id AS b FROM pgque.receive('q06_z', 'gone', 10) LIMIT 1 \gset
SELECT pgque.nack(:b, i, NULL, 'no retries') AS nack FROM generate_series(1, 2) i;
SELECT pgque.ack(:b) AS ack;
SELECT batch_id AS b FROM pgque.receive('q06_z', 'stays', 10) LIMIT 1 \gset
SELECT pgque.nack(:b, 3) AS nack;
SELECT pgque.ack(:b) AS ack;
SELECT count(*) AS retry_rows FROM pgque.retry_queue WHERE rq_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q06_z');
SELECT consumer_name, msg_id, reason, retry_count FROM pgque.dlq_list('q06_z') ORDER BY msg_id;
SELECT pgque.unsubscribe('q06_z', 'gone');
SELECT count(*) AS kept FROM pgque.dlq_list('q06_z');
SELECT min(dl_id) AS gone_dl FROM pgque.dlq_list('q06_z') WHERE consumer_name = 'gone' \gset
SELECT test.err(format('SELECT pgque.dlq_replay(%s)', :gone_dl));
SELECT count(*) AS still_kept FROM pgque.dlq_list('q06_z');
-- dlq_list limits
SELECT count(*) AS limited FROM pgque.dlq_list('q06_z', 2);
SELECT test.err($$SELECT * FROM pgque.dlq_list('q06_z', 0)$$);
SELECT test.err($$SELECT * FROM pgque.dlq_list('q06_nope')$$);
-- purge: the default keeps recent ones; '0' removes all; bad arguments PQ006
SELECT pgque.dlq_purge('q06_z') AS purged_default;
SELECT pgque.dlq_purge('q06_z', '1 hour') AS purged_1h;
SELECT test.err($$SELECT pgque.dlq_purge('q06_z', '-1 second')$$);
SELECT test.err($$SELECT pgque.dlq_purge('q06_z', NULL)$$);
SELECT test.err($$SELECT pgque.dlq_purge('q06_nope', '0')$$);
SELECT pgque.dlq_purge('q06_z', '0') AS purged;
SELECT count(*) AS left_after_purge FROM pgque.dlq_list('q06_z');
SELECT pgque.dlq_purge('q06_z', '0') AS purged_again;

---------------------------------------------------------------------------
-- An explicit retry_after is honoured: a retry due in an hour is not moved by
-- maint(); it stays pending.
---------------------------------------------------------------------------
SELECT pgque.send('q06_a', 'job', 'later');
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, batch_id AS b FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT :msg_id AS msg_id, pgque.nack(:b, :msg_id, '1 hour') AS nack;
SELECT pgque.ack(:b) AS ack;
SELECT pgque.maint() >= 0 AS maint_ran;
SELECT pgque.maint_retry_events() AS moved;
SELECT retry_pending FROM pgque.get_consumer_info('q06_a', 'a');
SELECT rq_due - now() BETWEEN interval '59 minutes' AND interval '61 minutes' AS due_in_an_hour
  FROM pgque.retry_queue WHERE rq_sub = :a_sub AND ev_id = :msg_id;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT count(*) AS nothing_for_a FROM pgque.receive('q06_a', 'a', 10);
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');

---------------------------------------------------------------------------
-- nack errors: PQ005 for a message of another batch, one not handed out yet,
-- or one already acked; PQ004 for a batch that is not open; PQ006 for a NULL
-- msg_id or a negative retry_after.
---------------------------------------------------------------------------
SELECT pgque.send('q06_a', 'job', 'n' || i) FROM generate_series(1, 3) i;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id AS m1, batch_id AS b FROM pgque.receive('q06_a', 'a', 1) \gset
SELECT :m1 AS first_handed_out;
SELECT pg_temp.e(format('SELECT pgque.nack(%s, 1)', :b)) AS other_batch;
SELECT pg_temp.e(format('SELECT pgque.nack(%s, %s)', :b, :m1 + 1)) AS not_handed_out;
SELECT pg_temp.e(format('SELECT pgque.nack(%s, 424242)', :b)) AS unknown_msg;
SELECT pgque.ack(:b) AS ack;   -- the first piece
SELECT msg_id AS m2, batch_id AS b2 FROM pgque.receive('q06_a', 'a', 1) \gset
SELECT :m2 AS second_handed_out;
SELECT pg_temp.e(format('SELECT pgque.nack(%s, %s)', :b2, :m1)) AS already_acked;
SELECT pg_temp.e(format('SELECT pgque.nack(%s, %s)', :b, :m2)) AS not_in_that_piece;
SELECT pg_temp.e(format('SELECT pgque.nack(%s, NULL)', :b2)) AS null_msg;
SELECT pg_temp.e(format($$SELECT pgque.nack(%s, %s, '-1 second')$$, :b2, :m2)) AS negative_delay;
SELECT test.err('SELECT pgque.nack(-3, 1)') AS unknown_batch;
SELECT test.err('SELECT pgque.nack(NULL, 1)') AS null_batch;
-- the message handed out and not acked can be nacked; the batch goes on
SELECT pgque.nack(:b2, :m2, '1 hour') AS nack;
SELECT pgque.ack(:b2) AS ack;
SELECT array_agg(msg_id) AS last_piece, min(batch_id) AS b3 FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT :'last_piece' AS last_piece, pgque.ack(:b3) AS ack;
SELECT test.batch('q06_a', 'a') IS NULL AS finished;
-- after the batch is finished its messages cannot be nacked
SELECT pg_temp.e(format('SELECT pgque.nack(%s, %s)', :b, :m1)) AS finished_batch;
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');

---------------------------------------------------------------------------
-- event_retry (PgQ): by seconds or timestamp, for any event of the open
-- batch; 1, then 0 when already queued; no dead-lettering.
---------------------------------------------------------------------------
SELECT pgque.send('q06_a', 'job', 'er' || i) FROM generate_series(1, 2) i;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT batch_id AS b, cur_tick_id IS NOT NULL AS opened FROM pgque.next_batch_info('q06_a', 'a') \gset
SELECT min(ev_id) AS e1, max(ev_id) AS e2 FROM pgque.get_batch_events(:b) \gset
SELECT :e1 AS e1, :e2 AS e2;
SELECT pgque.event_retry(:b, :e1, 0) AS by_seconds;
SELECT pgque.event_retry(:b, :e1, 0) AS by_seconds_again;
SELECT pgque.event_retry(:b, :e2, now() + interval '1 hour') AS by_time;
SELECT pgque.event_retry(:b, :e2, now()) AS by_time_again;
SELECT pg_temp.e(format('SELECT pgque.event_retry(%s, 1, 0)', :b)) AS not_in_batch;
SELECT pg_temp.e(format('SELECT pgque.event_retry(%s, %s, -1)', :b, :e1)) AS negative_seconds;
SELECT pg_temp.e(format('SELECT pgque.event_retry(%s, NULL, 0)', :b)) AS null_event;
SELECT test.err('SELECT pgque.event_retry(-3, 1, 0)') AS unknown_batch;
SELECT test.err($$SELECT pgque.event_retry(-3, 1, now())$$) AS unknown_batch_ts;
SELECT pgque.finish_batch(:b);
SELECT ev_id, ev_retry, rq_due <= now() AS due_now FROM pgque.retry_queue WHERE rq_sub = :a_sub ORDER BY ev_id;
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, payload, retry_count FROM pg_temp.take('q06_a', 'a');
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');

---------------------------------------------------------------------------
-- Default backoff: least(base * 2^retry_count, cap), from the nack.  With
-- base 10 s and cap 15 s: a first failure is due in ~10 s, a second one
-- (20 s) is capped at ~15 s.  (Due time minus a later now() is at most the
-- delay; the lower bounds leave time for a slow machine.)
---------------------------------------------------------------------------
SELECT pgque.set_queue_config('q06_a', 'retry_backoff_base', '10 seconds');
SELECT pgque.set_queue_config('q06_a', 'retry_backoff_cap', '15 seconds');
SELECT array_agg(pgque.send('q06_a', 'job', 'bo' || i)) AS bo FROM generate_series(1, 2) i;
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT array_agg(msg_id ORDER BY msg_id) AS ids, min(msg_id) AS bo1, max(msg_id) AS bo2, min(batch_id) AS b
  FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT :'ids' AS ids;
SELECT pgque.nack(:b, :bo1) AS nack_default;
SELECT pgque.nack(:b, :bo2, '0') AS nack_now;
SELECT pgque.ack(:b) AS ack;
SELECT pgque.maint_retry_events() AS moved;   -- bo2 only
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, batch_id AS b FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT msg_id, retry_count FROM pgque.receive('q06_a', 'a', 10);
SELECT pgque.nack(:b, :bo2) AS nack_default;
SELECT pgque.ack(:b) AS ack;
SELECT ev_id, ev_retry,
       rq_due - now() BETWEEN interval '7 seconds' AND interval '10 seconds' AS due_in_10s,
       rq_due - now() BETWEEN interval '12 seconds' AND interval '15 seconds' AS due_in_15s
  FROM pgque.retry_queue WHERE rq_sub = :a_sub AND ev_id IN (:bo1, :bo2) ORDER BY ev_id;
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');

---------------------------------------------------------------------------
-- Fan-out is intact: the bystander b (read step by step) and b2 (reads
-- everything once now) each got every event exactly once, never a retried
-- or replayed copy.
---------------------------------------------------------------------------
INSERT INTO bgot SELECT * FROM pg_temp.take('q06_a', 'b');
CREATE TEMP TABLE b2got AS SELECT * FROM pg_temp.take('q06_a', 'b2');
SELECT 'b' AS consumer, count(*) AS received, count(DISTINCT msg_id) AS distinct_ids,
       array_agg(msg_id ORDER BY msg_id) = ARRAY(SELECT generate_series(1, (SELECT max(msg_id) FROM bgot))) AS all_ids,
       count(retry_count) AS with_retry_count
  FROM bgot
UNION ALL
SELECT 'b2', count(*), count(DISTINCT msg_id),
       array_agg(msg_id ORDER BY msg_id) = (SELECT array_agg(msg_id ORDER BY msg_id) FROM bgot),
       count(retry_count)
  FROM b2got;

---------------------------------------------------------------------------
-- A consumer's pending retries disappear when it unsubscribes; its dead
-- letters stay until purged.
---------------------------------------------------------------------------
SELECT pgque.send('q06_a', 'job', 'final');
SELECT pgque.force_tick('q06_a') IS NOT NULL AS ticked;
SELECT msg_id, batch_id AS b FROM pgque.receive('q06_a', 'a', 10) \gset
SELECT pgque.set_queue_config('q06_a', 'max_retries', '0');
SELECT pgque.nack(:b, :msg_id, NULL, 'last') AS nack;
SELECT pgque.ack(:b) AS ack;
SELECT count(*) AS a_retries FROM pgque.retry_queue WHERE rq_sub = :a_sub;
SELECT consumer_name, retry_pending, dead_letters FROM pgque.get_consumer_info('q06_a', 'a');
SELECT pgque.unsubscribe('q06_a', 'a');
SELECT count(*) AS a_retries FROM pgque.retry_queue WHERE rq_sub = :a_sub;
SELECT retry_pending, dead_letters FROM pgque.get_queue_info('q06_a');
SELECT consumer_name, msg_id, reason FROM pgque.dlq_list('q06_a');

-- moved retries and replayed dead letters make the ticker tick by itself
-- (they count as new events), instead of waiting for the idle tick
SELECT pgque.create_queue('q06_t');
SELECT pgque.subscribe('q06_t', 'c');
SELECT pgque.set_queue_config('q06_t', 'ticker_idle_period', '1 hour');
SELECT pgque.set_queue_config('q06_t', 'retry_backoff_base', '0');
SELECT pgque.set_queue_config('q06_t', 'max_retries', '1');
SELECT pgque.send('q06_t', 't', 'x');
SELECT pgque.ticker('q06_t') IS NOT NULL AS ticked_send;
SELECT msg_id, batch_id AS b FROM pgque.receive('q06_t', 'c', 10) \gset
SELECT pgque.nack(:b, :msg_id) AS nack, pgque.ack(:b) AS ack;
SELECT pgque.ticker('q06_t') IS NULL AS nothing_new_yet;
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.ticker('q06_t') IS NOT NULL AS ticked_retry;
SELECT msg_id, retry_count, batch_id AS b FROM pgque.receive('q06_t', 'c', 10) \gset
SELECT :msg_id AS msg_id, :retry_count AS retry_count, pgque.nack(:b, :msg_id) AS nack, pgque.ack(:b) AS ack;
SELECT dl_id FROM pgque.dlq_list('q06_t') \gset
SELECT pgque.dlq_replay(:dl_id) AS replayed;
SELECT pgque.ticker('q06_t') IS NOT NULL AS ticked_replay;
SELECT msg_id, retry_count FROM pgque.receive('q06_t', 'c', 10);

---------------------------------------------------------------------------
-- retry_jitter: a fraction 0..1 of the computed backoff taken off at
-- random.  With base 10 s and jitter 0.5 every delay is in [5 s, 10 s] and
-- the delays differ; an explicit retry_after is not jittered.  Bad values:
-- PQ006.
---------------------------------------------------------------------------
SELECT v, test.err(format($$SELECT pgque.set_queue_config('q06_t', 'retry_jitter', %L)$$, v)) AS result
  FROM unnest(ARRAY['0', '1', '0.5', '1.5', '-0.1', 'NaN', 'abc', '']) v;
SELECT test.err($$SELECT pgque.set_queue_config('q06_t', 'retry_jitter', NULL)$$) AS null_jitter;
SELECT queue_retry_jitter FROM pgque.queue WHERE queue_name = 'q06_t';
SELECT pgque.set_queue_config('q06_t', 'retry_backoff_base', '10 seconds');
SELECT pgque.set_queue_config('q06_t', 'max_retries', '5');
SELECT pgque.ack(test.piece('q06_t', 'c')) AS ack_earlier;
SELECT count(pgque.send('q06_t', 'j', 'jitter ' || i)) AS sent FROM generate_series(1, 20) i;
SELECT pgque.force_tick('q06_t') IS NOT NULL AS ticked;
SELECT min(batch_id) AS b, array_agg(msg_id) AS jids FROM pgque.receive('q06_t', 'c', 100) \gset
SELECT count(pgque.nack(:b, m)) AS nacked FROM unnest(:'jids'::bigint[]) m WHERE m <> (:'jids'::bigint[])[1];
BEGIN;  -- one now() for the nack and the check
SELECT pgque.nack(:b, (:'jids'::bigint[])[1], '7 seconds') AS nack_explicit;
SELECT rq_due - now() = interval '7 seconds' AS explicit_not_jittered
  FROM pgque.retry_queue WHERE ev_id = (:'jids'::bigint[])[1]
   AND rq_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q06_t');
COMMIT;
SELECT pgque.ack(:b) AS ack;
SELECT count(*) AS retries,
       bool_and(rq_due - now() BETWEEN interval '4.9 seconds' AND interval '10 seconds') AS within_5_to_10s,
       count(DISTINCT rq_due) > 1 AS delays_differ
  FROM pgque.retry_queue WHERE rq_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q06_t')
   AND ev_id <> (:'jids'::bigint[])[1];

---------------------------------------------------------------------------
-- Per-send max_retries (send_opts): overrides the queue's limit, travels
-- with retried copies, the dead letter and its replay, and is honoured by
-- nack.  The queue allows 0 retries; the event asks for 1.  Another event
-- asks for 0 on a queue that allows 5.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q06_m');
SELECT pgque.subscribe('q06_m', 'c');
SELECT pgque.set_queue_config('q06_m', 'max_retries', '0');
SELECT pgque.set_queue_config('q06_m', 'retry_backoff_base', '0');
SELECT pgque.send_opts('q06_m', 'job', 'one retry', max_retries => 1) AS m1 \gset
SELECT pgque.force_tick('q06_m') IS NOT NULL AS ticked;
SELECT batch_id AS b, retry_count IS NULL AS first_delivery FROM pgque.receive('q06_m', 'c', 10) \gset
SELECT :'first_delivery' AS first_delivery, pgque.nack(:b, :m1, NULL, 'first') AS nack, pgque.ack(:b) AS ack;
SELECT ev_max_retries FROM pgque.retry_queue
 WHERE ev_id = :m1 AND rq_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q06_m');
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q06_m') IS NOT NULL AS ticked;
SELECT batch_id AS b, coalesce(retry_count, 0) AS retry_count FROM pgque.receive('q06_m', 'c', 10) \gset
SELECT :retry_count AS retry_count, pgque.nack(:b, :m1, NULL, 'second') AS nack, pgque.ack(:b) AS ack;
SELECT consumer_name, msg_id = :m1 AS is_m1, reason, retry_count FROM pgque.dlq_list('q06_m');
SELECT dl_id FROM pgque.dlq_list('q06_m') \gset
SELECT pgque.dlq_replay(:dl_id) = :m1 AS replayed;
SELECT pgque.force_tick('q06_m') IS NOT NULL AS ticked;
SELECT batch_id AS b, retry_count IS NULL AS first_delivery FROM pgque.receive('q06_m', 'c', 10) \gset
SELECT :'first_delivery' AS replay_first_delivery, pgque.nack(:b, :m1) AS nack_retries_again, pgque.ack(:b) AS ack;
SELECT pgque.set_queue_config('q06_m', 'max_retries', '5');
SELECT pgque.send_opts('q06_m', 'job', 'no retry', max_retries => 0) AS m0 \gset
SELECT pgque.force_tick('q06_m') IS NOT NULL AS ticked;
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q06_m') IS NOT NULL AS ticked;
CREATE TEMP TABLE m06 AS SELECT * FROM pgque.receive('q06_m', 'c', 10);
SELECT msg_id = :m0 AS is_m0, retry_count FROM m06 ORDER BY msg_id;
SELECT pgque.nack(batch_id, msg_id, NULL, 'per-send limit') AS nack, msg_id = :m0 AS is_m0 FROM m06 ORDER BY msg_id;
SELECT pgque.ack(min(batch_id)) AS ack FROM m06;
SELECT msg_id = :m0 AS is_m0, reason, retry_count FROM pgque.dlq_list('q06_m') ORDER BY msg_id;
SELECT test.err($$SELECT pgque.send_opts('q06_m', 'job', 'x', max_retries => -1)$$) AS negative;

SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['q06_a', 'q06_z', 'q06_t', 'q06_m']) q;
