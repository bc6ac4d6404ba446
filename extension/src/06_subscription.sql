-- Subscriptions.  Every consumer of a queue sees every event sent after it
-- subscribed (fan-out); each has its own position and open batch.

-- subscribe(queue_name, consumer_name): start consuming the queue from now on.
-- Returns 1 when subscribed, 0 when it already was.  Errors: PQ001, PQ006.
CREATE FUNCTION pgque.subscribe(queue_name text, consumer_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
    t pgque.tick;
    s pgque.subscription;
    n int;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    PERFORM pgque._check_name('consumer', consumer_name, 63);
    -- Key-share lock: drop_queue (FOR UPDATE) waits for us, or we for it.
    PERFORM 1 FROM pgque.queue WHERE queue_id = q.queue_id FOR KEY SHARE;
    IF NOT FOUND THEN
        q := pgque._queue(queue_name);  -- dropped meanwhile: raises PQ001
    END IF;
    t := pgque._last_tick(q.queue_id);
    INSERT INTO pgque.consumer (sub_queue, sub_consumer) VALUES (q.queue_id, consumer_name)
    ON CONFLICT (sub_queue, sub_consumer) DO NOTHING
    RETURNING sub_id INTO s.sub_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 1 THEN
        s.sub_last_tick := t.tick_id;             s.sub_last_time := t.tick_time;
        s.sub_last_snapshot := t.tick_snapshot;   s.sub_last_seq := t.tick_event_seq;
        s.sub_done := false;
        PERFORM pgque._save(s);
    END IF;
    RETURN n;
END
$$;

-- unsubscribe(queue_name, consumer_name): stop consuming; the consumer's
-- position, open batch and pending retries are dropped (its dead letters are
-- kept until purged).  Returns 1 when unsubscribed, 0 when it was not
-- subscribed.  Errors: PQ001, PQ006.
CREATE FUNCTION pgque.unsubscribe(queue_name text, consumer_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
    n int;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    PERFORM pgque._check_name('consumer', consumer_name, 63);
    DELETE FROM pgque.consumer WHERE sub_queue = q.queue_id AND sub_consumer = consumer_name;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- register_consumer / unregister_consumer: PgQ's names for subscribe / unsubscribe.
CREATE FUNCTION pgque.register_consumer(queue_name text, consumer_name text) RETURNS int
LANGUAGE sql AS $$ SELECT pgque.subscribe(queue_name, consumer_name) $$;

CREATE FUNCTION pgque.unregister_consumer(queue_name text, consumer_name text) RETURNS int
LANGUAGE sql AS $$ SELECT pgque.unsubscribe(queue_name, consumer_name) $$;
