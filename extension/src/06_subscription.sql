-- Subscriptions.  Every consumer of a queue sees every event sent after it
-- subscribed (fan-out); each has its own position and open batch.

-- Unclaimed events.  While a queue has no consumer, its events are kept
-- for the first consumer that subscribes (jobs sent before the first
-- worker ever started are not lost): the queue row holds the position they
-- start from (queue_unclaimed_*, a copied tick), set by create_queue() and
-- by the unsubscribe of its last consumer, and taken by the next
-- subscribe.  Like a stopped consumer's, that position holds back rotation,
-- so the queue's tables grow until someone subscribes, or keep_unclaimed
-- is turned off (set_queue_config), which lets them go.  Subscribing and
-- unsubscribing lock the queue row, so that exactly one of them sees the
-- last consumer leave or the first come.

-- _keep_unclaimed(queue_id): keep the queue's events from its newest tick
-- on for the next consumer, when keep_unclaimed is on and it has none.
CREATE FUNCTION pgque._keep_unclaimed(queue_id int) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    t pgque.tick := pgque._last_tick(queue_id);
BEGIN
    UPDATE pgque.queue q
       SET queue_unclaimed_tick = t.tick_id, queue_unclaimed_time = t.tick_time,
           queue_unclaimed_snapshot = t.tick_snapshot, queue_unclaimed_seq = t.tick_event_seq
     WHERE q.queue_id = _keep_unclaimed.queue_id AND q.queue_keep_unclaimed AND q.queue_unclaimed_tick IS NULL
       AND NOT EXISTS (SELECT 1 FROM pgque.consumer c WHERE c.sub_queue = q.queue_id AND c.sub_parent IS NULL);
END
$$;

-- subscribe(queue_name, consumer_name): start consuming the queue.  The
-- first consumer of a queue starts at its unclaimed events: everything
-- sent since the queue was created, or since its last consumer
-- unsubscribed (unless keep_unclaimed is off); any other starts from now
-- on (the queue's newest tick).
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
    -- drop_queue (FOR UPDATE) waits for us, or we for it; so do other
    -- subscribes and unsubscribes (see above).
    SELECT * INTO q FROM pgque.queue WHERE queue_id = q.queue_id FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        q := pgque._queue(queue_name);  -- dropped meanwhile: raises PQ001
    END IF;
    INSERT INTO pgque.consumer (sub_queue, sub_consumer) VALUES (q.queue_id, consumer_name)
    ON CONFLICT (sub_queue, sub_consumer) DO NOTHING
    RETURNING sub_id INTO s.sub_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 1 THEN
        IF q.queue_unclaimed_tick IS NOT NULL THEN
            s.sub_last_tick := q.queue_unclaimed_tick;          s.sub_last_time := q.queue_unclaimed_time;
            s.sub_last_snapshot := q.queue_unclaimed_snapshot;  s.sub_last_seq := q.queue_unclaimed_seq;
            UPDATE pgque.queue
               SET queue_unclaimed_tick = NULL, queue_unclaimed_time = NULL,
                   queue_unclaimed_snapshot = NULL, queue_unclaimed_seq = NULL
             WHERE queue_id = q.queue_id;
        ELSE
            t := pgque._last_tick(q.queue_id);
            s.sub_last_tick := t.tick_id;             s.sub_last_time := t.tick_time;
            s.sub_last_snapshot := t.tick_snapshot;   s.sub_last_seq := t.tick_event_seq;
        END IF;
        s.sub_done := false;
        PERFORM pgque._save(s);
    END IF;
    RETURN n;
END
$$;

-- unsubscribe(queue_name, consumer_name): stop consuming; the consumer's
-- position, open batch, workers and pending retries are dropped (its dead
-- letters are kept until purged).  When it was the queue's last consumer,
-- events from the newest tick on are kept for the next one (unclaimed
-- events, see above).  Returns 1 when unsubscribed, 0 when it was not
-- subscribed.  Errors: PQ001, PQ006.
CREATE FUNCTION pgque.unsubscribe(queue_name text, consumer_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
    n int;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    PERFORM pgque._check_name('consumer', consumer_name, 63);
    PERFORM 1 FROM pgque.queue WHERE queue_id = q.queue_id FOR NO KEY UPDATE;
    DELETE FROM pgque.consumer WHERE sub_queue = q.queue_id AND sub_consumer = consumer_name;
    GET DIAGNOSTICS n = ROW_COUNT;
    IF n = 1 THEN
        PERFORM pgque._keep_unclaimed(q.queue_id);
    END IF;
    RETURN n;
END
$$;

-- register_consumer / unregister_consumer: PgQ's names for subscribe / unsubscribe.
CREATE FUNCTION pgque.register_consumer(queue_name text, consumer_name text) RETURNS int
LANGUAGE sql AS $$ SELECT pgque.subscribe(queue_name, consumer_name) $$;

CREATE FUNCTION pgque.unregister_consumer(queue_name text, consumer_name text) RETURNS int
LANGUAGE sql AS $$ SELECT pgque.unsubscribe(queue_name, consumer_name) $$;
