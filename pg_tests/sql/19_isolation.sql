-- 19_isolation: one queue never stops the others.  ticker() and maint() run
-- each queue's step (tick, table switch, retry and delayed movers, putting
-- rows back when the logs and stores are recycled) so that a failure of one
-- queue is recorded -- get_queue_info().errors and last_error_* -- and
-- logged as a WARNING, while every other queue ticks, rotates and gets its
-- delayed events, and nothing of the failing queue is lost; the record goes
-- when the step next succeeds, or when the queue is dropped.  Failures are
-- forced by a superuser's triggers that raise for one queue only.

SET statement_timeout = '20s';
SELECT pgque.create_queue(n) FROM unnest(ARRAY['iso_a', 'iso_b', 'iso_c']) n;
SELECT pgque.set_queue_config(n, 'ticker_max_count', '1') FROM unnest(ARRAY['iso_a', 'iso_b', 'iso_c']) n;
SELECT pgque.subscribe(n, 'c') FROM unnest(ARRAY['iso_a', 'iso_b', 'iso_c']) n;
-- test.last_ticks(): the newest tick of each iso_ queue.
CREATE FUNCTION test.last_ticks() RETURNS TABLE (queue_name text, last_tick_id bigint) LANGUAGE sql AS $$
    SELECT queue_name, last_tick_id FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1
$$;
-- test.fail(), test.fail_tick(queue): trigger functions that raise (the
-- latter for the ticks of one queue).
CREATE FUNCTION test.fail() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'test: % refused by %', TG_OP, TG_NAME USING ERRCODE = 'XX042';
END
$$;
CREATE FUNCTION test.fail_tick() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.tick_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = TG_ARGV[0]) THEN
        RAISE EXCEPTION 'test: no tick for %', TG_ARGV[0] USING ERRCODE = 'XX042';
    END IF;
    RETURN NEW;
END
$$;
-- test.on_event_tables(queue, what): a trigger on each of the queue's event tables.
CREATE FUNCTION test.on_event_tables(q text, what text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT format('pgque.event_%s_%s', queue_id, n) FROM pgque.queue, generate_series(0, queue_ntables - 1) n
              WHERE queue_name = q LOOP
        -- Rows go in through the parent, which fires row triggers only.
        EXECUTE format('CREATE TRIGGER test_fail BEFORE %s ON %s FOR EACH %s EXECUTE FUNCTION test.fail()',
                       what, t, CASE what WHEN 'INSERT' THEN 'ROW' ELSE 'STATEMENT' END);
    END LOOP;
END
$$;
CREATE FUNCTION test.off_event_tables(q text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    t text;
BEGIN
    FOR t IN SELECT format('pgque.event_%s_%s', queue_id, n) FROM pgque.queue, generate_series(0, queue_ntables - 1) n
              WHERE queue_name = q LOOP
        EXECUTE format('DROP TRIGGER test_fail ON %s', t);
    END LOOP;
END
$$;
-- test.events(queue, data): how many events with this payload the queue's tables hold.
CREATE FUNCTION test.events(q text, data text) RETURNS bigint LANGUAGE sql AS $$
    SELECT count(*) FROM pgque.event e JOIN pgque.queue x
        ON e.ev_slot BETWEEN x.queue_slot AND x.queue_slot + x.queue_ntables - 1
     WHERE x.queue_name = q AND e.ev_data = data
$$;
SELECT pgque.maint() >= 0 AS settled;
SELECT pgque.ticker() >= 0 AS settled;

---------------------------------------------------------------------------
-- Nothing failed: no errors.
---------------------------------------------------------------------------
SELECT queue_name, errors, last_error_step, last_error_sqlstate, last_error, last_error_at
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1;

---------------------------------------------------------------------------
-- A queue that cannot tick: the others tick; ticker() warns, counts only
-- the ticks made, and records the failure; consecutive failures count up.
---------------------------------------------------------------------------
CREATE TRIGGER test_fail_tick BEFORE INSERT ON pgque.tick FOR EACH ROW EXECUTE FUNCTION test.fail_tick('iso_b');
CREATE TEMP TABLE ticks_before AS SELECT * FROM test.last_ticks();
SELECT pgque.send(n, 't', 'one') > 0 AS sent FROM unnest(ARRAY['iso_a', 'iso_b', 'iso_c']) n;
SELECT pgque.ticker() AS ticked;
SELECT t.queue_name, t.last_tick_id > b.last_tick_id AS ticked
  FROM test.last_ticks() t JOIN ticks_before b USING (queue_name) ORDER BY 1;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, last_error, last_error_at > now() - interval '1 minute' AS recent
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1;
SELECT pgque.send(n, 't', 'two') > 0 AS sent FROM unnest(ARRAY['iso_a', 'iso_c']) n;
SELECT pgque.ticker() AS ticked_again;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_b');
-- The others' events are delivered meanwhile.
SELECT test.ids('iso_a', 'c') IS NOT NULL AS a_received, pgque.finish_batch(test.batch('iso_a', 'c')) AS a_finished;
-- The cause gone, the queue ticks and its record goes.
DROP TRIGGER test_fail_tick ON pgque.tick;
SELECT pgque.ticker() >= 1 AS ticked_after_fix;
SELECT errors, last_error_step, last_error FROM pgque.get_queue_info('iso_b');
SELECT count(*) AS error_rows FROM pgque.queue_error;
-- ticker(queue_name) of the failing queue raises, as before.
CREATE TRIGGER test_fail_tick BEFORE INSERT ON pgque.tick FOR EACH ROW EXECUTE FUNCTION test.fail_tick('iso_b');
SELECT pgque.send('iso_b', 't', 'three') > 0 AS sent;
SELECT test.err($$SELECT pgque.ticker('iso_b')$$) AS single_queue_ticker;
DROP TRIGGER test_fail_tick ON pgque.tick;

-- A bad value stored by hand (the event sequence is no sequence): the same,
-- and the info functions still report every queue.
UPDATE pgque.queue SET queue_event_seq = 'pgque.queue'::regclass WHERE queue_name = 'iso_b'
RETURNING queue_name;
SELECT pgque.send('iso_a', 't', 'four') > 0 AS sent;
-- The server's own message for this differs between PostgreSQL versions:
-- not shown, only that there is one (the warning carries it too).
SET client_min_messages = error;
SELECT pgque.ticker() AS ticked;
RESET client_min_messages;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, coalesce(last_error, '') <> '' AS has_last_error, ev_new
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1;
SELECT queue_name, consumer_name, pending_events FROM pgque.get_consumer_info() WHERE queue_name = 'iso_b';
UPDATE pgque.queue SET queue_event_seq = format('pgque.event_%s_seq', queue_id)::regclass WHERE queue_name = 'iso_b'
RETURNING queue_name;
SELECT pgque.set_queue_config('iso_b', 'ticker_idle_period', '1 microsecond');
SELECT pgque.ticker() >= 1 AS ticked_after_fix;
SELECT pgque.set_queue_config('iso_b', 'ticker_idle_period', '1 minute');
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_b');

---------------------------------------------------------------------------
-- A queue whose delayed events cannot be published: the others' go out;
-- the failing queue's stay parked and go out once the cause is gone.
---------------------------------------------------------------------------
SELECT pgque.send_at('iso_a', 't', 'later a', now() + interval '1 millisecond') > 0 AS parked_a,
       pgque.send_at('iso_c', 't', 'later c', now() + interval '1 millisecond') > 0 AS parked_c;
SELECT test.on_event_tables('iso_a', 'INSERT');
SELECT pg_sleep(0.01);
SELECT pgque.ticker() >= 0 AS ticker_goes_on;
SELECT test.events('iso_a', 'later a') AS a_published, test.events('iso_c', 'later c') AS c_published;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, last_error
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1;
-- maint() runs the same mover: it goes on too, and the count goes up.
SELECT pgque.maint() >= 0 AS maint_goes_on;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_a');
SELECT test.off_event_tables('iso_a');
SELECT pgque.ticker() >= 0 AS ticker_after_fix;
SELECT test.events('iso_a', 'later a') AS a_published, test.events('iso_c', 'later c') AS c_published;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_a');

---------------------------------------------------------------------------
-- A queue whose retries cannot be moved back: the others' are.
---------------------------------------------------------------------------
SELECT pgque.send(n, 't', 'retry me') > 0 AS sent FROM unnest(ARRAY['iso_a', 'iso_c']) n;
SELECT pgque.force_tick(n) > 0 AS ticked FROM unnest(ARRAY['iso_a', 'iso_c']) n;
SELECT pgque.nack(m.batch_id, m.msg_id, interval '0')
  FROM unnest(ARRAY['iso_a', 'iso_c']) n, pgque.receive(n, 'c', 100) m WHERE m.payload = 'retry me';
SELECT test.on_event_tables('iso_c', 'INSERT');
SELECT pgque.maint() >= 0 AS maint_goes_on;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, retry_pending
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1;
SELECT test.off_event_tables('iso_c');
SELECT pgque.maint() >= 1 AS maint_after_fix;
SELECT errors, retry_pending FROM pgque.get_queue_info('iso_c');
-- A failing move whose events go away (the consumer unsubscribes) is
-- forgotten too: the step will not run for the queue again.
SELECT pgque.send('iso_c', 't', 'retry me again') > 0 AS sent;
SELECT pgque.force_tick('iso_c') > 0 AS ticked;
SELECT pgque.subscribe('iso_c', 'd');
SELECT pgque.send('iso_c', 't', 'for d') > 0 AS sent;
SELECT pgque.force_tick('iso_c') > 0 AS ticked;
SELECT pgque.nack(m.batch_id, m.msg_id, interval '0') FROM pgque.receive('iso_c', 'd', 100) m;
SELECT test.on_event_tables('iso_c', 'INSERT');
SELECT pgque.maint() >= 0 AS maint_goes_on;
SELECT errors, last_error_step, retry_pending FROM pgque.get_queue_info('iso_c');
SELECT pgque.unsubscribe('iso_c', 'd');
SELECT pgque.maint() >= 0 AS maint_goes_on;
SELECT errors, last_error_step, retry_pending FROM pgque.get_queue_info('iso_c');
SELECT test.off_event_tables('iso_c');

---------------------------------------------------------------------------
-- A queue whose event table cannot be switched: the others rotate.
---------------------------------------------------------------------------
SELECT pgque.create_queue(n) FROM unnest(ARRAY['iso_r1', 'iso_r2']) n;
SELECT pgque.set_queue_config(n, 'keep_unclaimed', 'false'),
       pgque.set_queue_config(n, 'rotation_period', '1 millisecond') FROM unnest(ARRAY['iso_r1', 'iso_r2']) n;
SELECT test.on_event_tables('iso_r2', 'TRUNCATE');
SELECT pg_sleep(0.01);
SELECT pgque.maint() >= 1 AS maint_goes_on;
SELECT queue_name, queue_cur_table, errors, last_error_step, last_error_sqlstate, last_error
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_r%' ORDER BY 1;
SELECT test.off_event_tables('iso_r2');
SELECT pg_sleep(0.01);
SELECT pgque.maint() >= 1 AS maint_after_fix;
SELECT queue_name, queue_cur_table, errors FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_r%' ORDER BY 1;

---------------------------------------------------------------------------
-- A queue whose newest tick cannot be put back when the tick and consumer
-- logs are recycled: nothing is truncated (the logs wait), the queue is
-- recorded, and maint() goes on with its other steps.
---------------------------------------------------------------------------
CREATE TRIGGER test_fail_tick BEFORE INSERT ON pgque.tick FOR EACH ROW EXECUTE FUNCTION test.fail_tick('iso_r1');
SELECT pgque._seq_value('pgque.log_gen') AS log_gen \gset
SELECT setval('pgque.log_switched_at', 1) > 0 AS logs_due;
SELECT pgque.maint() >= 0 AS maint_goes_on;
SELECT pgque._seq_value('pgque.log_gen') = :log_gen AS logs_not_recycled;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, last_error
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'iso\_%' ORDER BY 1;
DROP TRIGGER test_fail_tick ON pgque.tick;
SELECT pgque.maint_rotate_logs('1 microsecond') AS logs_recycled;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_r1');

---------------------------------------------------------------------------
-- A queue whose parked events cannot be put back when the delayed store is
-- recycled: nothing is truncated (its events stay), the queue is recorded
-- (step 'delayed_store'), and maint() goes on: the other queue's due event
-- is published by the same call.  The cause gone, the store is recycled,
-- keeping the event, which is delivered once due.
---------------------------------------------------------------------------
-- test.fail_rows(queue, column): a trigger function that refuses the rows
-- whose column holds the queue's id.
CREATE FUNCTION test.fail_rows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF (to_jsonb(NEW) ->> TG_ARGV[1])::int = (SELECT queue_id FROM pgque.queue WHERE queue_name = TG_ARGV[0]) THEN
        RAISE EXCEPTION 'test: % refuses the rows of %', TG_NAME, TG_ARGV[0] USING ERRCODE = 'XX042';
    END IF;
    RETURN NEW;
END
$$;
-- test.recycle(store): recycle the delayed or dedup store now, as
-- maint() does once its period is over; 1 when it did.
CREATE FUNCTION test.recycle(store text) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
    PERFORM setval(format('pgque.%s_switched_at', store), 1);
    RETURN CASE store WHEN 'delayed' THEN pgque.maint_rotate_delayed() WHEN 'dedup' THEN pgque.maint_rotate_dedup() END;
END
$$;
SELECT now() + interval '1 millisecond' AS due_c, now() + interval '300 milliseconds' AS due_a \gset
SELECT pgque.send_at('iso_a', 't', 'parked a', :'due_a') AS parked_a \gset
SELECT pgque.send_at('iso_c', 't', 'parked c', :'due_c') > 0 AS parked_c;
-- Two switches: the events' partition is the next one to recycle.
SELECT test.recycle('delayed') AS recycled;
SELECT test.recycle('delayed') AS recycled;
CREATE TRIGGER test_fail_rows BEFORE INSERT ON pgque.delayed
    FOR EACH ROW EXECUTE FUNCTION test.fail_rows('iso_a', 'dq_queue');
SELECT pgque._seq_value('pgque.delayed_gen') AS delayed_gen \gset
SELECT setval('pgque.delayed_switched_at', 1) > 0 AS delayed_due;
SELECT pg_sleep_until(:'due_c');
SELECT pgque.maint() >= 1 AS maint_goes_on;
SELECT pgque._seq_value('pgque.delayed_gen') = :delayed_gen AS store_not_recycled;
SELECT count(*) AS a_kept FROM pgque.delayed d JOIN pgque.queue q ON q.queue_id = d.dq_queue
 WHERE q.queue_name = 'iso_a' AND d.ev_id = :parked_a;
SELECT test.events('iso_c', 'parked c') AS c_published;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, last_error
  FROM pgque.get_queue_info() WHERE queue_name IN ('iso_a', 'iso_c') ORDER BY 1;
DROP TRIGGER test_fail_rows ON pgque.delayed;
SELECT pgque.maint_rotate_delayed('1 microsecond') AS store_recycled;
SELECT count(*) AS a_kept FROM pgque.delayed d JOIN pgque.queue q ON q.queue_id = d.dq_queue
 WHERE q.queue_name = 'iso_a' AND d.ev_id = :parked_a;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_a');
SELECT pg_sleep_until(:'due_a');
SELECT pgque.maint() >= 0 AS maint_after_fix;
SELECT test.events('iso_a', 'parked a') AS a_published;
-- A failure that is no queue's (the mover's position refused) raises.
CREATE TRIGGER test_fail BEFORE INSERT ON pgque.delayed_pos FOR EACH ROW EXECUTE FUNCTION test.fail();
SELECT test.err($$SELECT pgque.maint_rotate_delayed('1 microsecond')$$) AS not_a_queues_failure;
DROP TRIGGER test_fail ON pgque.delayed_pos;
SELECT count(*) AS error_rows FROM pgque.queue_error;

---------------------------------------------------------------------------
-- The same for the dedup store (step 'dedup'): the keys of the failing
-- queue stay and keep deduplicating, and maint() goes on with its other
-- steps (the delayed store is recycled by the same call).
---------------------------------------------------------------------------
SELECT pgque.send_unique('iso_a', 't', 'unique a', 'k', '1 hour') AS unique_a \gset
SELECT pgque.send_unique('iso_c', 't', 'unique c', 'k', '1 hour') AS unique_c \gset
SELECT test.recycle('dedup') AS recycled;
SELECT test.recycle('dedup') AS recycled;
CREATE TRIGGER test_fail_rows BEFORE INSERT ON pgque.dedup
    FOR EACH ROW EXECUTE FUNCTION test.fail_rows('iso_a', 'dk_queue');
SELECT pgque._seq_value('pgque.dedup_gen') AS dedup_gen, pgque._seq_value('pgque.delayed_gen') AS delayed_gen \gset
SELECT setval('pgque.dedup_switched_at', 1) > 0 AS dedup_due, setval('pgque.delayed_switched_at', 1) > 0 AS delayed_due;
SELECT pgque.maint() >= 1 AS maint_goes_on;
SELECT pgque._seq_value('pgque.dedup_gen') = :dedup_gen AS keys_not_recycled,
       pgque._seq_value('pgque.delayed_gen') = :delayed_gen + 1 AS delayed_recycled;
SELECT queue_name, errors, last_error_step, last_error_sqlstate, last_error
  FROM pgque.get_queue_info() WHERE queue_name IN ('iso_a', 'iso_c') ORDER BY 1;
SELECT pgque.send_unique('iso_a', 't', 'unique a again', 'k') = :unique_a AS a_deduped,
       pgque.send_unique('iso_c', 't', 'unique c again', 'k') = :unique_c AS c_deduped;
DROP TRIGGER test_fail_rows ON pgque.dedup;
SELECT pgque.maint_rotate_dedup('1 microsecond') AS keys_recycled;
SELECT pgque.send_unique('iso_a', 't', 'unique a again', 'k') = :unique_a AS a_still_deduped;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_a');

---------------------------------------------------------------------------
-- Several failing steps add up; dropping the queue drops its record.
---------------------------------------------------------------------------
CREATE TRIGGER test_fail_tick BEFORE INSERT ON pgque.tick FOR EACH ROW EXECUTE FUNCTION test.fail_tick('iso_r2');
SELECT test.on_event_tables('iso_r2', 'TRUNCATE');
SELECT pg_sleep(0.01);
SELECT pgque.force_tick('iso_r1') > 0 AS ticked;
SELECT pgque.send('iso_r2', 't', 'x') > 0 AS sent;
SELECT pgque.ticker() >= 0 AS ticker_goes_on;
SELECT pgque.maint() >= 0 AS maint_goes_on;
SELECT errors, last_error_step FROM pgque.get_queue_info('iso_r2');
SELECT qe_step, qe_count FROM pgque.queue_error ORDER BY 1;
DROP TRIGGER test_fail_tick ON pgque.tick;
SELECT test.off_event_tables('iso_r2');
SELECT pgque.drop_queue('iso_r2', true);
SELECT count(*) AS error_rows FROM pgque.queue_error;
SELECT pgque.drop_queue(n, true) FROM unnest(ARRAY['iso_a', 'iso_b', 'iso_c', 'iso_r1']) n;
