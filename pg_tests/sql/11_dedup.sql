-- 11_dedup: send_unique / send_opts(unique_key): a second send of a key
-- returns the first event's id and inserts nothing while that event is
-- pending for a consumer (delayed, not finished by every consumer, or in a
-- retry store) or within the key's ttl; concurrent senders of one key (one
-- wins, a waiter takes over when the winner rolls back); expiry by
-- maint_rotate_dedup.

CREATE FUNCTION pg_temp.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN r ELSE left(r, 7) || regexp_replace(substr(r, 8), '[0-9]+', 'N', 'g') END
      FROM test.err(sql) r
$$;
-- pg_temp.keys(queue): the queue's key rows, as key:id
CREATE FUNCTION pg_temp.keys(q text) RETURNS text[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(dk_key || ':' || ev_id ORDER BY dk_key, ev_id), '{}') FROM pgque.dedup
     WHERE dk_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = q)
$$;
-- pg_temp.rotate(): recycle every partition of the dedup store once
CREATE PROCEDURE pg_temp.rotate() LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. 3 LOOP
        PERFORM pgque.maint_rotate_dedup('1 microsecond');
        COMMIT;
    END LOOP;
END
$$;

SELECT pgque.create_queue('q11');
SELECT pgque.subscribe('q11', c) FROM unnest(ARRAY['a', 'b']) c;

---------------------------------------------------------------------------
-- Errors
---------------------------------------------------------------------------
SELECT test.err($$SELECT pgque.send_unique('q11', 't', 'x', NULL)$$) AS null_key;
SELECT test.err($$SELECT pgque.send_unique('q11', 't', 'x', '')$$) AS empty_key;
SELECT test.err($$SELECT pgque.send_unique('q11', 't', 'x', 'k', '-1 second')$$) AS negative_ttl;
SELECT test.err($$SELECT pgque.send_unique('q11', NULL, 'x', 'k')$$) AS null_type;
SELECT test.err($$SELECT pgque.send_unique('q11_nope', 't', 'x', 'k')$$) AS unknown_queue;
SELECT test.err($$SELECT pgque.send_opts('q11', 't', 'x', unique_ttl => '1 hour')$$) AS ttl_without_key;
SELECT test.err($$SELECT pgque.send_unique(NULL, 't', 'x', 'k')$$) AS null_queue;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.err($$SELECT pgque.send_unique('q11', 't', 'x', 'k')$$) AS repeatable_read;
ROLLBACK;
SELECT pg_temp.keys('q11') AS no_keys_after_errors;

---------------------------------------------------------------------------
-- Pending for consumers: the same key gives the same id, with nothing
-- inserted, until every consumer has finished the event.  A received but
-- unacked batch still counts as pending.  Keys are per queue.
---------------------------------------------------------------------------
SELECT pgque.send_unique('q11', 't', 'first', 'k1') AS k1 \gset
SELECT :k1 AS k1,
       pgque.send_unique('q11', 't', 'second', 'k1') = :k1 AS same_id,
       pgque.send_unique('q11', 't', '{"third": 3}'::jsonb, 'k1') = :k1 AS same_id_jsonb,
       pgque.send_unique('q11', 't', 'other key', 'k2') <> :k1 AS other_key_new_id;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT msg_id, payload FROM pgque.receive('q11', 'a', 10);
SELECT pgque.send_unique('q11', 't', 'while a holds it', 'k1') = :k1 AS same_while_unacked;
SELECT pgque.ack(test.piece('q11', 'a')) AS ack;
SELECT pgque.send_unique('q11', 't', 'b still pending', 'k1') = :k1 AS same_while_b_pending;
SELECT test.drain('q11', 'b') AS b_got;
SELECT pgque.send_unique('q11', 't', 'after both', 'k1') AS k1_new \gset
SELECT :k1_new > :k1 AS new_event_after_all_finished;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') = ARRAY[:k1_new]::bigint[] AS a_got_new_only;
SELECT test.drain('q11', 'b') = ARRAY[:k1_new]::bigint[] AS b_got_new_only;

-- same transaction: the second send sees the first
BEGIN;
SELECT pgque.send_unique('q11', 't', 'tx 1', 'k3') AS k3 \gset
SELECT pgque.send_unique('q11', 't', 'tx 2', 'k3') = :k3 AS same_in_tx;
COMMIT;
-- a rolled-back send frees its key
BEGIN;
SELECT pgque.send_unique('q11', 't', 'rolled back', 'k4') AS k4_rb \gset
ROLLBACK;
SELECT pgque.send_unique('q11', 't', 'after rollback', 'k4') > :k4_rb AS new_id_after_rollback;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT m.payload FROM pgque.receive('q11', 'a', 10) m ORDER BY msg_id;
SELECT pgque.ack(test.piece('q11', 'a'));
SELECT test.drain('q11', 'b') IS NOT NULL AS b_drained;

---------------------------------------------------------------------------
-- A nacked event waiting in a consumer's retry store is pending.
---------------------------------------------------------------------------
SELECT pgque.set_queue_config('q11', 'retry_backoff_base', '1 hour');
SELECT pgque.send_unique('q11', 't', 'will fail', 'k5') AS k5 \gset
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'b') = ARRAY[:k5]::bigint[] AS b_done;
SELECT batch_id AS b FROM pgque.receive('q11', 'a', 10) \gset
SELECT pgque.nack(:b, :k5) AS nack, pgque.ack(:b) AS ack;
SELECT pgque.send_unique('q11', 't', 'while retry pending', 'k5') = :k5 AS same_while_retry_pending;
DELETE FROM pgque.retry_queue WHERE ev_id = :k5;  -- as if the consumer unsubscribed
SELECT pgque.send_unique('q11', 't', 'retry gone', 'k5') > :k5 AS new_after_retry_gone;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') IS NOT NULL AS a_drained, test.drain('q11', 'b') IS NOT NULL AS b_drained;

---------------------------------------------------------------------------
-- ttl: the key stays live for ttl after the send even once consumed; then
-- a new event goes out.
---------------------------------------------------------------------------
SELECT pgque.send_unique('q11', 't', 'with ttl', 'k6', '400 milliseconds') AS k6,
       now() + interval '400 milliseconds' AS k6_exp \gset
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') = ARRAY[:k6]::bigint[] AS a_done, test.drain('q11', 'b') = ARRAY[:k6]::bigint[] AS b_done;
SELECT pgque.send_unique('q11', 't', 'within ttl', 'k6', '1 hour') = :k6 AS same_within_ttl;
SELECT pg_sleep_until(:'k6_exp');
SELECT pgque.send_unique('q11', 't', 'after ttl', 'k6') > :k6 AS new_after_ttl;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') IS NOT NULL AS a_drained, test.drain('q11', 'b') IS NOT NULL AS b_drained;

---------------------------------------------------------------------------
-- A queue without consumers keeps its events for the first one (unclaimed):
-- a key is live while its event waits there.  With keep_unclaimed off the
-- queue holds nothing pending: only the ttl keeps a key live there.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q11_unclaimed');
SELECT pgque.send_unique('q11_unclaimed', 't', 'x', 'k') AS u1 \gset
SELECT pgque.send_unique('q11_unclaimed', 't', 'x', 'k') = :u1 AS same_while_unclaimed;
SELECT pgque.subscribe('q11_unclaimed', 'first');
SELECT pgque.force_tick('q11_unclaimed') IS NOT NULL AS ticked;
SELECT test.drain('q11_unclaimed', 'first') = ARRAY[:u1]::bigint[] AS first_consumer_got_it;
SELECT pgque.send_unique('q11_unclaimed', 't', 'x', 'k') > :u1 AS new_once_consumed;
SELECT pgque.drop_queue('q11_unclaimed', true);
SELECT pgque.create_queue('q11_none');
SELECT pgque.set_queue_config('q11_none', 'keep_unclaimed', 'off');
SELECT pgque.send_unique('q11_none', 't', 'x', 'k') AS n1 \gset
SELECT pgque.send_unique('q11_none', 't', 'x', 'k') > :n1 AS new_without_consumers;
SELECT pgque.send_unique('q11_none', 't', 'x', 'kt', '1 hour') AS n2 \gset
SELECT pgque.send_unique('q11_none', 't', 'x', 'kt', '1 hour') = :n2 AS same_within_ttl;

---------------------------------------------------------------------------
-- Delayed events with a key: pending while parked (whatever the ttl), and
-- until consumed after publication; a cancel frees the key.
---------------------------------------------------------------------------
SELECT pgque.send_opts('q11_none', 't', 'parked', deliver_at => now() + interval '1 hour', unique_key => 'kd') AS d1 \gset
SELECT pgque.send_unique('q11_none', 't', 'x', 'kd') = :d1 AS same_while_parked;
SELECT pgque.cancel_scheduled('q11_none', :d1) AS cancel;
SELECT pgque.send_unique('q11_none', 't', 'x', 'kd') > :d1 AS new_after_cancel;

SELECT now() + interval '300 milliseconds' AS due \gset
SELECT pgque.send_opts('q11', 't', 'parked', deliver_at => :'due', unique_key => 'kd') AS d2 \gset
SELECT pgque.send_unique('q11', 't', 'x', 'kd') = :d2 AS same_while_parked;
SELECT pg_sleep_until(:'due');
SELECT pgque.maint_delayed_events() AS moved;
SELECT pgque.send_unique('q11', 't', 'x', 'kd') = :d2 AS same_published_not_consumed;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') = ARRAY[:d2]::bigint[] AS a_got, test.drain('q11', 'b') = ARRAY[:d2]::bigint[] AS b_got;
SELECT pgque.send_unique('q11', 't', 'x', 'kd') > :d2 AS new_after_consumed;

---------------------------------------------------------------------------
-- Concurrent senders of one key: the second waits for the first; when the
-- first commits it returns the first's id, when it rolls back it wins.
-- Exactly one event is delivered either way.
---------------------------------------------------------------------------
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') IS NOT NULL AS a_drained, test.drain('q11', 'b') IS NOT NULL AS b_drained;
SELECT dblink_connect('s1', 'dbname=' || current_database());
SELECT dblink_connect('s2', 'dbname=' || current_database());
SELECT dblink_exec('s1', 'BEGIN');
SELECT id AS c1 FROM dblink('s1', $$SELECT pgque.send_unique('q11', 't', 'from s1', 'kc')$$) AS t(id bigint) \gset
SELECT dblink_send_query('s2', $$SELECT pgque.send_unique('q11', 't', 'from s2', 'kc')$$);
SELECT pg_sleep(0.1);
SELECT dblink_is_busy('s2') AS s2_waits;
SELECT dblink_exec('s1', 'COMMIT');
SELECT id = :c1 AS s2_got_s1_id FROM dblink_get_result('s2') AS t(id bigint);
SELECT * FROM dblink_get_result('s2') AS t(id bigint);
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT m.msg_id = :c1 AS is_s1, m.payload FROM pgque.receive('q11', 'a', 10) m;
SELECT pgque.ack(test.piece('q11', 'a'));

SELECT dblink_exec('s1', 'BEGIN');
SELECT id AS c2 FROM dblink('s1', $$SELECT pgque.send_unique('q11', 't', 'from s1, rolled back', 'kr')$$) AS t(id bigint) \gset
SELECT dblink_send_query('s2', $$SELECT pgque.send_unique('q11', 't', 'from s2, wins', 'kr')$$);
SELECT pg_sleep(0.1);
SELECT dblink_is_busy('s2') AS s2_waits;
SELECT dblink_exec('s1', 'ROLLBACK');
SELECT id AS c3 FROM dblink_get_result('s2') AS t(id bigint) \gset
SELECT * FROM dblink_get_result('s2') AS t(id bigint);
SELECT :c3 <> :c2 AS s2_has_own_id;
SELECT pgque.send_unique('q11', 't', 'later', 'kr') = :c3 AS later_sender_gets_s2_id;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT m.msg_id = :c3 AS is_s2, m.payload FROM pgque.receive('q11', 'a', 10) m;
SELECT pgque.ack(test.piece('q11', 'a'));
SELECT dblink_disconnect('s1');
SELECT dblink_disconnect('s2');

---------------------------------------------------------------------------
-- Expiry: maint_rotate_dedup drops keys that are no longer live and keeps
-- live ones (pending, parked, within ttl), so the store stays bounded.
---------------------------------------------------------------------------
SELECT test.drain('q11', 'a') IS NOT NULL AS a_drained, test.drain('q11', 'b') IS NOT NULL AS b_drained;
SELECT pgque.send_unique('q11', 't', 'pending', 'live_pending') AS lp,
       pgque.send_unique('q11', 't', 'ttl', 'live_ttl', '1 hour') AS lt,
       pgque.send_opts('q11', 't', 'parked', deliver_at => now() + interval '1 hour', unique_key => 'live_parked') AS lpk \gset
SELECT count(*) > 3 AS many_keys_before FROM pgque.dedup;
CALL pg_temp.rotate();
SELECT pg_temp.keys('q11') AS q11_keys_left, pg_temp.keys('q11_none') AS q11_none_keys_left;
SELECT pgque.send_unique('q11', 't', 'x', 'live_pending') = :lp AS pending_kept,
       pgque.send_unique('q11', 't', 'x', 'live_ttl') = :lt AS ttl_kept,
       pgque.send_unique('q11', 't', 'x', 'live_parked') = :lpk AS parked_kept;
-- a parked key whose event is published meanwhile is carried with the
-- publishing transaction, and is released once consumed
SELECT pgque.send_opts('q11', 't', 'parked briefly', deliver_at => now() + interval '1 millisecond', unique_key => 'kp') AS kp \gset
SELECT pg_sleep(0.01);
SELECT pgque.maint_delayed_events() AS moved;
CALL pg_temp.rotate();
SELECT dk_txid IS NOT NULL AS carried_with_txid FROM pgque.dedup WHERE dk_key = 'kp';
SELECT pgque.send_unique('q11', 't', 'x', 'kp') = :kp AS still_pending;
SELECT pgque.force_tick('q11') IS NOT NULL AS ticked;
SELECT test.drain('q11', 'a') IS NOT NULL AS a_drained, test.drain('q11', 'b') IS NOT NULL AS b_drained;
SELECT pgque.send_unique('q11', 't', 'x', 'kp') > :kp AS released;
SELECT test.err($$SELECT pgque.maint_rotate_dedup('-1 second')$$) AS bad_period;

-- Roles: pgque_writer may send_unique; pgque_reader may not; rotation is pgque_admin's.
CREATE ROLE r11_writer IN ROLE pgque_writer;
CREATE ROLE r11_reader IN ROLE pgque_reader;
GRANT USAGE ON SCHEMA test TO r11_writer, r11_reader;  -- for test.err
SET ROLE r11_writer;
SELECT pgque.send_unique('q11', 't', 'x', 'by writer', '1 hour') = pgque.send_unique('q11', 't', 'y', 'by writer')
    AS writer_send_unique;
SELECT left(test.err($$SELECT pgque.maint_rotate_dedup('1 minute')$$), 5) AS writer_rotate;
SET ROLE r11_reader;
SELECT left(test.err($$SELECT pgque.send_unique('q11', 't', 'x', 'k')$$), 5) AS reader_send_unique;
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM r11_writer, r11_reader;
DROP ROLE r11_writer, r11_reader;

SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['q11', 'q11_none']) q;
CALL pg_temp.rotate();
SELECT count(*) AS keys_of_dropped_queues FROM pgque.dedup d
 WHERE NOT EXISTS (SELECT 1 FROM pgque.queue q WHERE q.queue_id = d.dk_queue);
