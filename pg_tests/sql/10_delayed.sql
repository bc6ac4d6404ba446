-- 10_delayed: send_at / send_opts(deliver_at), the delayed store's mover in
-- ticker() and maint(), cancel_scheduled, and the store's rotation.
--
-- Due times are a fraction of a second ahead; pg_sleep_until waits for them
-- (the feature is about time passing, so this is not synchronization by
-- sleep).  Every statement runs in its own transaction: now() is the
-- transaction's start.

CREATE FUNCTION pg_temp.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN r ELSE left(r, 7) || regexp_replace(substr(r, 8), '[0-9]+', 'N', 'g') END
      FROM test.err(sql) r
$$;
-- pg_temp.parked(queue): ids of the queue's events still parked (not moved,
-- not cancelled).
CREATE FUNCTION pg_temp.parked(q text) RETURNS bigint[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(d.ev_id ORDER BY d.ev_id), '{}') FROM pgque.delayed d
     WHERE d.dq_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = q)
       AND NOT EXISTS (SELECT 1 FROM pgque.delayed_done x WHERE x.dd_queue = d.dq_queue AND x.ev_id = d.ev_id)
$$;
-- pg_temp.got(queue, consumer): drain, as (id, payload) text
CREATE FUNCTION pg_temp.got(q text, c text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    res text[] := '{}';
    m   pgque.message;
    b   bigint;
BEGIN
    LOOP
        b := NULL;
        FOR m IN SELECT * FROM pgque.receive(q, c, 100) LOOP
            res := res || (m.msg_id || ':' || m.payload);
            b := m.batch_id;
        END LOOP;
        EXIT WHEN b IS NULL;
        PERFORM pgque.ack(b);
    END LOOP;
    RETURN res;
END
$$;

SELECT pgque.create_queue('q10');
SELECT pgque.subscribe('q10', c) FROM unnest(ARRAY['a', 'b']) c;

---------------------------------------------------------------------------
-- Errors: nothing is half-done.
---------------------------------------------------------------------------
SELECT test.err($$SELECT pgque.send_at('q10', 't', 'x', NULL)$$) AS null_deliver_at;
SELECT test.err($$SELECT pgque.send_at('q10', NULL, 'x', now() + interval '1 hour')$$) AS null_type;
SELECT test.err($$SELECT pgque.send_at('q10', 't', 'x', 'infinity')$$) AS infinite;
SELECT test.err($$SELECT pgque.send_at('q10_nope', 't', 'x', now() + interval '1 hour')$$) AS unknown_queue;
SELECT test.err($$SELECT pgque.send_at('bad name', 't', 'x', now() + interval '1 hour')$$) AS bad_queue_name;
SELECT test.err($$SELECT pgque.send_opts('q10', 't', 'x', max_retries => -1)$$) AS negative_max_retries;
SELECT test.err($$SELECT pgque.send_at(NULL, 't', 'x', now() + interval '1 hour')$$) AS null_queue;
SELECT pg_temp.parked('q10') AS parked_after_errors;
SELECT pgque.ticker() >= 0 AS ticker_ran, pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS nothing_sent;

---------------------------------------------------------------------------
-- deliver_at in the past (long ago too) and exactly now() send at once:
-- the next tick delivers them, nothing is parked.
---------------------------------------------------------------------------
SELECT pgque.send_at('q10', 't', 'past', now() - interval '1 hour') AS past,
       pgque.send_at('q10', 't', 'exactly now', now()) AS exactly_now,
       pgque.send_at('q10', 't', '{"j": 1}'::jsonb, '1970-01-01 00:00Z') AS long_ago;
SELECT pg_temp.parked('q10') AS parked;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS a_got, pg_temp.got('q10', 'b') AS b_got;

---------------------------------------------------------------------------
-- A future deliver_at: the id is drawn at send time; it is not delivered
-- before it is due (ticks and maint() before then deliver nothing); the
-- first ticker() after the due time publishes it and the next one ticks
-- it, to every consumer, with its id, payload, extras and send time.
---------------------------------------------------------------------------
SELECT now() + interval '600 milliseconds' AS due1 \gset
SELECT pgque.send_at('q10', 'job', 'due soon', :'due1', 'x1', NULL, 'x3') AS d1,
       pgque.send('q10', 't', 'plain after it') AS plain \gset
SELECT :d1 AS d1, :plain AS plain;
SELECT pg_temp.parked('q10') AS parked;
SELECT pgque.ticker() >= 1 AS ticked_plain;
SELECT pgque.maint() >= 0 AS maint_ran;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS a_before_due;
SELECT pg_sleep_until(:'due1');
SELECT now() >= :'due1' AS due_now, pgque.ticker() AS queues_ticked;
SELECT pg_temp.parked('q10') AS parked_after_move;
SELECT pgque.ticker() >= 1 AS next_ticker_ticks;
SELECT msg_id, type, payload, extra1, extra2, extra3, retry_count, created_at < :'due1' AS created_at_send
  FROM pgque.receive('q10', 'a', 10);
SELECT pgque.ack(test.piece('q10', 'a')) AS ack;
SELECT pg_temp.got('q10', 'b') AS b_got;
-- exactly once: more ticks and movers bring nothing
SELECT pgque.maint() >= 0 AS maint_ran, pgque.maint_delayed_events() AS moved_again;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS a_again, pg_temp.got('q10', 'b') AS b_again;

---------------------------------------------------------------------------
-- Transactional: a rolled-back send_at is never delivered.
---------------------------------------------------------------------------
SELECT now() + interval '300 milliseconds' AS due2 \gset
BEGIN;
SELECT pgque.send_at('q10', 't', 'rolled back', :'due2') AS rb;
ROLLBACK;
SELECT pg_sleep_until(:'due2');
SELECT pgque.maint_delayed_events() AS moved;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS nothing;

---------------------------------------------------------------------------
-- cancel_scheduled: 1, then 0; never delivered.  0 for a delivered event.
-- PQ010 for a plain event, an unknown id, another queue's event; PQ006 for
-- NULL; PQ001 unknown queue; PQ009 outside READ COMMITTED.  A rolled-back
-- cancel cancels nothing.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q10_other');
SELECT now() + interval '400 milliseconds' AS due3 \gset
SELECT pgque.send_at('q10', 't', 'cancelled', :'due3') AS c1,
       pgque.send_at('q10', 't', 'cancel rolled back', :'due3') AS c2,
       pgque.send_at('q10_other', 't', 'elsewhere', now() + interval '1 hour') AS other \gset
SELECT :c1 AS c1, :c2 AS c2, :other AS other;
SELECT pgque.cancel_scheduled('q10', :c1) AS cancel;
SELECT pgque.cancel_scheduled('q10', :c1) AS cancel_again;
BEGIN;
SELECT pgque.cancel_scheduled('q10', :c2) AS cancel_in_rolled_back_tx;
ROLLBACK;
SELECT pg_temp.parked('q10') AS parked;
SELECT pg_temp.e(format($$SELECT pgque.cancel_scheduled('q10', %s)$$, :plain)) AS plain_event;
SELECT test.err($$SELECT pgque.cancel_scheduled('q10', 987654)$$) AS unknown_id;
SELECT pg_temp.e(format($$SELECT pgque.cancel_scheduled('q10', %s)$$, :other)) AS other_queue;
SELECT test.err($$SELECT pgque.cancel_scheduled('q10', NULL)$$) AS null_id;
SELECT test.err($$SELECT pgque.cancel_scheduled('q10_nope', 1)$$) AS unknown_queue;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT pg_temp.e(format($$SELECT pgque.cancel_scheduled('q10', %s)$$, :c2)) AS repeatable_read;
ROLLBACK;
SELECT pg_sleep_until(:'due3');
SELECT pgque.maint_delayed_events() AS moved;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS a_got, pg_temp.got('q10', 'b') AS b_got;
SELECT pgque.cancel_scheduled('q10', :c2) AS cancel_delivered;
SELECT pgque.cancel_scheduled('q10', :d1) AS cancel_delivered_earlier;
-- cancel in the sending transaction
BEGIN;
SELECT pgque.send_at('q10', 't', 'sent and cancelled', now() + interval '1 millisecond') AS sc \gset
SELECT pgque.cancel_scheduled('q10', :sc) AS cancel_own;
COMMIT;
SELECT pgque.maint_delayed_events() AS moved;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS nothing;

---------------------------------------------------------------------------
-- A sender that commits after the due time (and after mover runs): its
-- event is published by the first run after the commit, exactly once.
---------------------------------------------------------------------------
SELECT dblink_connect('d10', 'dbname=' || current_database());
SELECT dblink_exec('d10', 'BEGIN');
SELECT id AS late FROM dblink('d10', $$SELECT pgque.send_at('q10', 't', 'late commit', now() + interval '200 milliseconds')$$)
    AS t(id bigint) \gset
SELECT pg_sleep(0.3);
SELECT pgque.ticker() >= 0 AS ticker_ran, pgque.maint_delayed_events() AS moved_before_commit;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS nothing_yet;
SELECT dblink_exec('d10', 'COMMIT');
SELECT pgque.ticker() >= 0 AS ticker_moved;
SELECT pgque.ticker() >= 1 AS ticker_ticked;
SELECT pg_temp.got('q10', 'a') = ARRAY[:late || ':late commit'] AS a_got_late,
       pg_temp.got('q10', 'b') = ARRAY[:late || ':late commit'] AS b_got_late;
SELECT pgque.maint_delayed_events() AS moved_again;
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS a_again;

---------------------------------------------------------------------------
-- Cancel racing the mover.  (1) A cancel holds the event (uncommitted):
-- the mover skips it; the cancel rolls back: the next run delivers it.
-- (2) The mover holds it (uncommitted): a cancel waits, then returns 0.
---------------------------------------------------------------------------
SELECT pgque.send_at('q10', 't', 'raced 1', now() + interval '100 milliseconds') AS r1 \gset
SELECT dblink_exec('d10', 'BEGIN');
SELECT * FROM dblink('d10', format($$SELECT pgque.cancel_scheduled('q10', %s)$$, :r1)) AS t(cancel int);
SELECT pg_sleep(0.15);
SELECT pgque.maint_delayed_events() AS moved_while_cancel_holds_it;
SELECT pg_temp.parked('q10') = ARRAY[:r1]::bigint[] AS still_parked;
SELECT dblink_exec('d10', 'ROLLBACK');
SELECT pgque.ticker() >= 0 AS ticker_moved;
SELECT pgque.ticker() >= 1 AS ticker_ticked;
SELECT pg_temp.got('q10', 'a') = ARRAY[:r1 || ':raced 1'] AS delivered_after_rollback;
SELECT pg_temp.got('q10', 'b') AS b_got;

SELECT pgque.send_at('q10', 't', 'raced 2', now() + interval '100 milliseconds') AS r2 \gset
SELECT pg_sleep(0.15);
SELECT dblink_connect('m10', 'dbname=' || current_database());
SELECT dblink_exec('m10', 'BEGIN');
SELECT * FROM dblink('m10', 'SELECT pgque.maint_delayed_events()') AS t(moved int);
SELECT dblink_send_query('d10', format($$SELECT pgque.cancel_scheduled('q10', %s)$$, :r2));
SELECT pg_sleep(0.1);
SELECT dblink_is_busy('d10') AS cancel_waits_for_mover;
SELECT dblink_exec('m10', 'COMMIT');
SELECT * FROM dblink_get_result('d10') AS t(cancel int);
SELECT * FROM dblink_get_result('d10') AS t(cancel int);
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') = ARRAY[:r2 || ':raced 2'] AS delivered_once;
SELECT pg_temp.got('q10', 'b') AS b_got;
SELECT dblink_disconnect('m10');
SELECT dblink_disconnect('d10');

---------------------------------------------------------------------------
-- A failing mover does not stop ticker() from ticking (it warns), nor
-- maint(), which records the queue's failure (get_queue_info); once the
-- cause is gone the event goes out and the failure is forgotten.
-- The failure is made by a constraint no done row can meet.
---------------------------------------------------------------------------
SELECT pgque.send_at('q10', 't', 'mover fails first', now() + interval '1 millisecond') AS g,
       pgque.send('q10', 't', 'plain meanwhile') AS gp \gset
ALTER TABLE pgque.delayed_done ADD CONSTRAINT test_no_done CHECK (ev_id < 0) NOT VALID;
SELECT pg_sleep(0.01);
SET client_min_messages = error;  -- the WARNING names a partition
SELECT pgque.ticker() >= 1 AS ticks_despite_failing_mover;
SELECT pgque.maint() >= 0 AS maint_goes_on;
RESET client_min_messages;
SELECT errors > 0 AS failing, last_error_step, last_error_sqlstate FROM pgque.get_queue_info('q10');
SELECT pg_temp.got('q10', 'a') = ARRAY[:gp || ':plain meanwhile'] AS plain_delivered;
SELECT pg_temp.parked('q10') = ARRAY[:g]::bigint[] AS still_parked;
ALTER TABLE pgque.delayed_done DROP CONSTRAINT test_no_done;
SELECT pgque.ticker() >= 0 AS ticker_moved;
SELECT pgque.ticker() >= 1 AS ticker_ticked;
SELECT errors, last_error_step FROM pgque.get_queue_info('q10');
SELECT pg_temp.got('q10', 'a') = ARRAY[:g || ':mover fails first'] AS delivered_after_fix;
SELECT pg_temp.got('q10', 'b') = ARRAY[:gp || ':plain meanwhile', :g || ':mover fails first'] AS b_got_both;

---------------------------------------------------------------------------
-- Idle mover: with nothing parked and nothing new, ticker() leaves the
-- mover's log alone (it stops at the hint).
---------------------------------------------------------------------------
SELECT pgque.maint_delayed_events() AS settle;
SELECT count(*) AS pos_rows FROM pgque.delayed_pos \gset
SELECT pgque.ticker() >= 0 AS t1, pgque.ticker() >= 0 AS t2;
SELECT pgque.ticker() >= 0 AS t3;
SELECT count(*) - :pos_rows AS pos_rows_added_while_idle FROM pgque.delayed_pos;

---------------------------------------------------------------------------
-- Across rotations: events parked before several switches of the queue's
-- event tables and several rotations of the tick/consumer logs and of the
-- delayed store itself are still delivered once, and still cancellable.
-- A rotation keeps parked events and recent done rows, and drops done rows
-- older than its period (cancel then answers PQ010).
---------------------------------------------------------------------------
SELECT pgque.set_queue_config('q10', 'rotation_period', '1 millisecond');
SELECT now() + interval '1500 milliseconds' AS due4 \gset
SELECT pgque.send_at('q10', 't', 'across rotations', :'due4') AS x1,
       pgque.send_at('q10', 't', 'cancelled after rotations', :'due4') AS x2 \gset
SELECT queue_gen AS gen0 FROM pgque.queue WHERE queue_name = 'q10' \gset
SELECT pgque._seq_value('pgque.delayed_gen') AS dgen0 \gset
CREATE PROCEDURE pg_temp.rotate_all() LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 4 LOOP
        PERFORM pgque.force_tick('q10');
        COMMIT;
        PERFORM test.drain('q10', 'a');
        PERFORM test.drain('q10', 'b');
        COMMIT;
        PERFORM pg_sleep(0.01);
        COMMIT;
        PERFORM pgque.maint();
        COMMIT;
        PERFORM pgque.maint_rotate_tables_step2();
        COMMIT;
        PERFORM pgque.maint_rotate_logs('1 microsecond');
        COMMIT;
        PERFORM pgque.maint_rotate_delayed('1 microsecond');
        COMMIT;
    END LOOP;
END
$$;
CALL pg_temp.rotate_all();
SELECT queue_gen - :gen0 >= 3 AS event_tables_switched,
       pgque._seq_value('pgque.delayed_gen') - :dgen0 >= 3 AS delayed_store_rotated
  FROM pgque.queue WHERE queue_name = 'q10';
SELECT pg_temp.parked('q10') = ARRAY[:x1, :x2]::bigint[] AS both_still_parked;
SELECT pgque.cancel_scheduled('q10', :x2) AS cancel_after_rotations;
SELECT pg_sleep_until(:'due4');
SELECT pgque.ticker() >= 0 AS ticker_moved;
SELECT pgque.ticker() >= 1 AS ticker_ticked;
SELECT pg_temp.got('q10', 'a') = ARRAY[:x1 || ':across rotations'] AS a_once,
       pg_temp.got('q10', 'b') = ARRAY[:x1 || ':across rotations'] AS b_once;
SELECT pgque.cancel_scheduled('q10', :x1) AS done_remembered;
SELECT pg_sleep(0.01);
CALL pg_temp.rotate_all();
SELECT pg_temp.e(format($$SELECT pgque.cancel_scheduled('q10', %s)$$, :x1)) AS done_forgotten;
SELECT count(*) AS rows_left FROM pgque.delayed
 WHERE dq_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q10');
SELECT pgque.force_tick('q10') IS NOT NULL AS ticked;
SELECT pg_temp.got('q10', 'a') AS a_again;
-- maint_rotate_delayed: bad period
SELECT test.err($$SELECT pgque.maint_rotate_delayed('0')$$) AS zero_period;
SELECT test.err($$SELECT pgque.maint_rotate_delayed(NULL)$$) AS null_period;

---------------------------------------------------------------------------
-- A dropped queue's parked events go nowhere and are dropped by rotation.
---------------------------------------------------------------------------
SELECT pgque.send_at('q10_other', 't', 'orphan', now() + interval '1 millisecond') AS orphan;
SELECT pgque.drop_queue('q10_other');
SELECT pg_sleep(0.01);
SELECT pgque.maint_delayed_events() AS moved_nowhere;
CALL pg_temp.rotate_all();
SELECT count(*) AS orphans_left FROM pgque.delayed d
 WHERE NOT EXISTS (SELECT 1 FROM pgque.queue q WHERE q.queue_id = d.dq_queue);

---------------------------------------------------------------------------
-- Roles: pgque_writer may send_at, send_opts and cancel; pgque_reader may
-- not; the movers and rotation are pgque_admin's.
---------------------------------------------------------------------------
CREATE ROLE r10_writer IN ROLE pgque_writer;
CREATE ROLE r10_reader IN ROLE pgque_reader;
GRANT USAGE ON SCHEMA test TO r10_writer, r10_reader;  -- for test.err
SET ROLE r10_writer;
SELECT pgque.send_at('q10', 't', 'by writer', now() + interval '1 hour') AS w1 \gset
SELECT pgque.send_opts('q10', 't', 'by writer', deliver_at => now() + interval '1 hour') > :w1 AS writer_send_opts;
SELECT pgque.cancel_scheduled('q10', :w1) AS writer_cancel;
SELECT left(test.err('SELECT pgque.maint_delayed_events()'), 5) AS writer_mover;
SELECT left(test.err($$SELECT pgque.maint_rotate_delayed('1 minute')$$), 5) AS writer_rotate;
SET ROLE r10_reader;
SELECT left(test.err($$SELECT pgque.send_at('q10', 't', 'x', now())$$), 5) AS reader_send_at;
SELECT left(test.err($$SELECT pgque.cancel_scheduled('q10', 1)$$), 5) AS reader_cancel;
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM r10_writer, r10_reader;
DROP ROLE r10_writer, r10_reader;

SELECT pgque.drop_queue('q10', true);
