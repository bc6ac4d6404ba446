-- Retries.  A failed event is copied into retry_queue, owned by the consumer
-- that failed it; when due, the mover re-inserts it into the current event
-- table with ev_owner set, so only that consumer sees it again, with
-- retry_count one higher.  The original row is never touched.

-- _backoff(q, retry_count): least(base * 2^retry_count, cap), less a random
-- share of up to retry_jitter of it.  Jitter only shortens the delay, so the
-- cap stays the longest wait and a retry never comes later than configured.
-- Worked out in seconds (float8), with the cap applied before the result
-- becomes an interval: base * 2^n as an interval overflows long before n is
-- large (a month from n = 31 on).  n is taken at most 62: 2^62 times any
-- base of a microsecond or more passes every cap in range, and the product
-- stays finite.  Seconds count a month as 30 days and a year as 365.25,
-- interval comparison a year as 360: the outer least() makes a delay that
-- reaches the cap the cap itself.
CREATE FUNCTION pgque._backoff(q pgque.queue, retry_count int) RETURNS interval
LANGUAGE sql VOLATILE AS $$
    SELECT least(justify_hours(make_interval(secs =>
                     least(extract(epoch FROM q.queue_retry_backoff_base)::float8
                               * power(2::float8, least(greatest(retry_count, 0), 62)),
                           extract(epoch FROM q.queue_retry_backoff_cap)::float8))),
                 q.queue_retry_backoff_cap)
           * (1 - q.queue_retry_jitter * random())
$$;

-- _retry_insert(s, e, due, counted, reason): queue event e for redelivery
-- to s at due, as a failed attempt (its retry count one higher, and reason
-- kept for message_status) unless counted is false (snooze: a message that
-- never failed keeps a NULL count).  Returns 1, or 0 when it is already
-- queued.
CREATE FUNCTION pgque._retry_insert(s pgque.subscription, e pgque.event, due timestamptz,
                                    counted boolean DEFAULT true, reason text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    INSERT INTO pgque.retry_queue (rq_sub, rq_queue, rq_due, ev_id, ev_time, ev_retry, ev_type, ev_data,
                                   ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_max_retries, rq_reason)
    VALUES (s.sub_id, s.sub_queue, due, e.ev_id, e.ev_time,
            CASE WHEN counted THEN coalesce(e.ev_retry, 0) + 1 ELSE e.ev_retry END, e.ev_type, e.ev_data,
            e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4, e.ev_max_retries, reason)
    ON CONFLICT (rq_sub, ev_id) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- _dead_letter(s, e, reason): put event e in s's dead-letter store (once
-- per consumer and event).
CREATE FUNCTION pgque._dead_letter(s pgque.subscription, e pgque.event, reason text) RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pgque.dead_letter (dl_queue, dl_consumer, dl_reason, ev_id, ev_time, ev_txid, ev_retry,
                                   ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_max_retries)
    VALUES (s.sub_queue, s.sub_consumer, reason, e.ev_id, e.ev_time, e.ev_txid, e.ev_retry,
            e.ev_type, e.ev_data, e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4, e.ev_max_retries)
    ON CONFLICT (dl_queue, dl_consumer, ev_id) DO NOTHING
$$;

-- _retry_or_dead(s, e, retry_after, reason): nack's decision.  An event
-- already retried max_retries times (its own limit when it was sent with one,
-- else the queue's) goes to the dead-letter store (once per consumer and
-- event); any other is queued for retry.  Returns 'dead' or 'retry'.
CREATE FUNCTION pgque._retry_or_dead(s pgque.subscription, e pgque.event,
                                     retry_after interval, reason text) RETURNS text
LANGUAGE plpgsql AS $$
DECLARE
    q pgque.queue;
BEGIN
    SELECT * INTO q FROM pgque.queue WHERE queue_id = s.sub_queue;
    IF coalesce(e.ev_retry, 0) >= coalesce(e.ev_max_retries, q.queue_max_retries) THEN
        PERFORM pgque._dead_letter(s, e, reason);
        RETURN 'dead';
    END IF;
    PERFORM pgque._retry_insert(s, e, now() + coalesce(retry_after, pgque._backoff(q, e.ev_retry)), true, reason);
    RETURN 'retry';
END
$$;

-- event_retry(batch_id, ev_id, retry_time): PgQ's retry: redeliver an event
-- of an open batch to this consumer at retry_time, whatever its retry count
-- (no dead-lettering; use nack() for that).  retry_time is finite and at
-- most 100 years from now; an earlier one is due at once.
-- Returns 1, or 0 when it was already queued for retry.
-- Errors: PQ004 batch not open, PQ005 event not in batch, PQ006 NULL
-- argument, retry_time out of range.
CREATE FUNCTION pgque.event_retry(batch_id bigint, ev_id bigint, retry_time timestamptz) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s pgque.subscription := pgque._batch_sub(batch_id);
    e pgque.event;
BEGIN
    IF ev_id IS NULL THEN
        PERFORM pgque._invalid('ev_id', 'must not be NULL');
    END IF;
    PERFORM pgque._check_time('retry_time', retry_time, pgque._max_span());
    IF s.sub_id IS NULL THEN
        PERFORM pgque._batch_not_found(batch_id);
    END IF;
    SELECT * INTO e FROM pgque._batch_rows(s, true, 'AND ev_id = $3', 'LIMIT 1', NULL, ev_id, NULL);
    IF e.ev_id IS NULL THEN
        RAISE EXCEPTION 'pgque: event % is not in batch %', ev_id, batch_id USING ERRCODE = 'PQ005';
    END IF;
    RETURN pgque._retry_insert(pgque._owner(s), e, retry_time);
END
$$;

-- event_retry(batch_id, ev_id, retry_seconds): the same, retry_seconds from
-- now (0 or more: an int stays below 100 years).
-- Errors: as above, and PQ006 for NULL or negative seconds.
CREATE FUNCTION pgque.event_retry(batch_id bigint, ev_id bigint, retry_seconds int) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    PERFORM pgque._check_int('retry_seconds', retry_seconds, 0);
    RETURN pgque.event_retry(batch_id, ev_id, now() + make_interval(secs => retry_seconds));
END
$$;

-- _count_events(event_seq, hint, seen, n): make the ticker see n re-inserted
-- events.  The retry mover and dlq_replay keep an event's original id, so
-- without this the queue's event sequence (what the ticker watches) would
-- not move and the events would wait for the idle tick.  Called after the
-- insert, like a producer's nextval comes after its xid; the group's send
-- hint is drawn after the event sequence (04_ticker.sql, "Hints"), and
-- may wake the ticker (_wake).
CREATE FUNCTION pgque._count_events(event_seq regclass, hint regclass, seen regclass, n int) RETURNS void
LANGUAGE sql AS $$
    SELECT count(nextval(event_seq)) FROM generate_series(1, n);
    SELECT pgque._wake(nextval(hint), seen);
$$;

-- _retry_move(queue_id): move the queue's due retries into its current
-- event table; 0 when it is gone or being dropped.
CREATE FUNCTION pgque._retry_move(queue_id int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    name text;
    w    record;
    n    int;
BEGIN
    IF NOT pgque._queue_live(queue_id) THEN
        RETURN 0;
    END IF;
    SELECT q.queue_name INTO name FROM pgque.queue q WHERE q.queue_id = _retry_move.queue_id;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    w := pgque._writable(name);
    WITH moved AS (
        DELETE FROM pgque.retry_queue
         WHERE ctid = ANY (ARRAY(SELECT ctid FROM pgque.retry_queue
                                  WHERE rq_queue = w.queue_id AND rq_due <= now()
                                    FOR UPDATE SKIP LOCKED))
        RETURNING *)
    INSERT INTO pgque.event (ev_slot, ev_id, ev_time, ev_owner, ev_retry, ev_type, ev_data,
                             ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_max_retries)
    SELECT w.slot, ev_id, ev_time, rq_sub, ev_retry, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4,
           ev_max_retries
      FROM moved;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pgque._count_events(w.event_seq, w.hint, w.seen, n);
    RETURN n;
END
$$;

-- maint_retry_events(): move every due retry into its queue's current event
-- table.  Safe to run concurrently (rows are claimed with SKIP LOCKED).  One
-- queue never stops the others: the queues with due retries are moved in one
-- subtransaction, and only when that fails each in its own, recording the
-- failing ones (step 'retry', get_queue_info(); _each_queue, 10_maint.sql).
-- Returns how many events were moved.
CREATE FUNCTION pgque.maint_retry_events() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    ids int[] := ARRAY(SELECT q.queue_id FROM pgque.queue q
                        WHERE EXISTS (SELECT 1 FROM pgque.retry_queue r
                                       WHERE r.rq_queue = q.queue_id AND r.rq_due <= now())
                        ORDER BY q.queue_name);
BEGIN
    IF cardinality(ids) = 0 THEN
        RETURN 0;  -- no subtransaction when nothing is due
    END IF;
    RETURN pgque._each_queue('retry', ids);
END
$$;
