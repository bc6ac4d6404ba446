-- Dead letters: events a consumer failed max_retries + 1 times.

-- dlq_list(queue_name, max_rows): the queue's dead letters, newest first.
-- Errors: PQ001, PQ006 (max_rows NULL or below 1).
CREATE FUNCTION pgque.dlq_list(queue_name text, max_rows int DEFAULT 100)
RETURNS TABLE (dl_id bigint, consumer_name text, dead_at timestamptz, reason text,
               msg_id bigint, created_at timestamptz, retry_count int, type text, payload text,
               extra1 text, extra2 text, extra3 text, extra4 text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._check_int('max_rows', max_rows, 1);
    RETURN QUERY
        SELECT d.dl_id, d.dl_consumer, d.dl_time, d.dl_reason, d.ev_id, d.ev_time, d.ev_retry,
               d.ev_type, d.ev_data, d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4
          FROM pgque.dead_letter d
         WHERE d.dl_queue = q.queue_id
         ORDER BY d.dl_time DESC, d.dl_id DESC
         LIMIT max_rows;
END
$$;

-- dlq_replay(dl_id): deliver a dead letter again, to the consumer that
-- dead-lettered it only, as a first delivery (retry_count NULL, the same
-- msg_id, its own max_retries if it was sent with one), and remove it from
-- the dead-letter store.
-- Returns the event id.  Errors: PQ008 unknown dl_id, PQ003 consumer no
-- longer subscribed, PQ006 NULL dl_id.
CREATE FUNCTION pgque.dlq_replay(dl_id bigint) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    d pgque.dead_letter;
    s pgque.subscription;
    w record;
BEGIN
    IF dl_id IS NULL THEN
        PERFORM pgque._invalid('dl_id', 'must not be NULL');
    END IF;
    SELECT * INTO d FROM pgque.dead_letter x WHERE x.dl_id = dlq_replay.dl_id FOR UPDATE;
    IF NOT FOUND OR NOT pgque._may((SELECT queue_name FROM pgque.queue WHERE queue_id = d.dl_queue), 'admin') THEN
        RAISE EXCEPTION 'pgque: dead letter % does not exist', dl_id USING ERRCODE = 'PQ008';
    END IF;
    s := pgque._subscription((SELECT queue_name FROM pgque.queue WHERE queue_id = d.dl_queue), d.dl_consumer, false);
    w := pgque._writable((SELECT queue_name FROM pgque.queue WHERE queue_id = d.dl_queue));
    INSERT INTO pgque.event (ev_slot, ev_id, ev_time, ev_owner, ev_type, ev_data,
                             ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_max_retries)
    VALUES (w.slot, d.ev_id, d.ev_time, s.sub_id, d.ev_type, d.ev_data,
            d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4, d.ev_max_retries);
    PERFORM pgque._count_events(w.event_seq, w.hint, w.seen, 1);
    DELETE FROM pgque.dead_letter x WHERE x.dl_id = d.dl_id;
    RETURN d.ev_id;
END
$$;

-- dlq_purge(queue_name, older_than): delete the queue's dead letters older
-- than older_than (all of them with '0'; at most 100 years).  Returns how
-- many were deleted.  Errors: PQ001, PQ006 (older_than NULL or out of range).
CREATE FUNCTION pgque.dlq_purge(queue_name text, older_than interval DEFAULT '30 days') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
    n int;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._check_interval('older_than', older_than, interval '0', pgque._max_span());
    DELETE FROM pgque.dead_letter WHERE dl_queue = q.queue_id AND dl_time <= now() - older_than;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
