-- Cooperative workers: several processes share one consumer's stream, each
-- holding a different batch.
--
-- A worker is named on receive(queue, consumer, max, worker_name, lease) and
-- created on first use (a pgque.consumer row whose sub_parent is the
-- consumer).  A worker without a batch takes, in this order:
--   1. the batch of a sibling whose lease ran out (it stopped calling
--      receive/heartbeat): it resumes after what that sibling acknowledged,
--      under a new batch id, so the sibling's late ack or heartbeat reports 0;
--   2. the consumer's next window: from the consumer's position to the first
--      tick that covers max_return events (or the newest tick), after which
--      the consumer's position moves to the window's end.  Windows sized to
--      the worker's appetite leave work for the others when there is a
--      backlog, instead of one worker taking everything.
-- Handing out locks the consumer row, so two workers never take the same
-- window; ack, nack and heartbeat lock only the worker.
--
-- Retried copies belong to the consumer, so whichever worker's window holds
-- the retry gets it; dead letters are the consumer's.  A worker without a
-- batch pins nothing: rotation looks at workers' positions only while they
-- hold a batch.  Delivery stays at least once: a worker that was only slow
-- may still be handling the batch it lost.
--
-- A consumer is meant to be read either by its workers or by plain receive()
-- and the PgQ calls.  Mixing them loses and repeats nothing: a plain batch
-- starts at the consumer's position, past every window handed to a worker,
-- and workers get PQ025 while a plain batch is open.

-- _owner(s): the consumer that owns s's retries and dead letters: s itself,
-- or a worker's consumer.
CREATE FUNCTION pgque._owner(s pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    c pgque.subscription;
BEGIN
    IF s.sub_parent IS NULL THEN
        RETURN s;
    END IF;
    SELECT * INTO c FROM pgque.subscription WHERE sub_id = s.sub_parent;
    RETURN c;
END
$$;

-- _worker(queue_name, consumer_name, worker_name, lease): the worker, locked
-- after its consumer, created on first use, with a batch taken over from a
-- sibling whose lease ran out when it has none, and its lease set to
-- now() + lease (saved with its next state).  Errors: PQ001, PQ003, PQ006, PQ025.
CREATE FUNCTION pgque._worker(queue_name text, consumer_name text, worker_name text, lease interval)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    c  pgque.subscription := pgque._subscription(queue_name, consumer_name, true);
    id int;
    w  pgque.subscription;
    v  pgque.subscription;
BEGIN
    PERFORM pgque._check_name('worker', worker_name, 63);
    IF lease IS NULL OR lease <= interval '0' THEN
        PERFORM pgque._invalid('lease', format('%s (must be a positive interval)', coalesce(lease::text, 'NULL')));
    ELSIF c.sub_batch IS NOT NULL THEN
        RAISE EXCEPTION 'pgque: consumer % has batch % open; its workers cannot start before it is finished',
            quote_literal(consumer_name), c.sub_batch USING ERRCODE = 'PQ025';
    END IF;
    INSERT INTO pgque.consumer (sub_queue, sub_consumer, sub_parent)
    VALUES (c.sub_queue, c.sub_consumer || '/' || worker_name, c.sub_id)
    ON CONFLICT (sub_queue, sub_consumer) DO NOTHING
    RETURNING sub_id INTO id;
    IF id IS NOT NULL THEN
        w := c;  -- a state row to start from; a worker's own position is never read
        w.sub_id := id;
        PERFORM pgque._save(w);
    END IF;
    SELECT x.sub_id INTO id FROM pgque.consumer x
     WHERE x.sub_queue = c.sub_queue AND x.sub_consumer = c.sub_consumer || '/' || worker_name FOR UPDATE;
    SELECT * INTO w FROM pgque.subscription WHERE sub_id = id;
    IF w.sub_batch IS NULL THEN
        FOR v IN SELECT * FROM pgque.subscription
                  WHERE sub_parent = c.sub_id AND sub_batch IS NOT NULL AND sub_lease_until < now()
                  ORDER BY sub_next_tick
        LOOP
            -- Its ack or heartbeat may be under way: decide after it commits.
            PERFORM 1 FROM pgque.consumer WHERE sub_id = v.sub_id FOR UPDATE;
            SELECT * INTO v FROM pgque.subscription WHERE sub_id = v.sub_id;
            CONTINUE WHEN v.sub_batch IS NULL OR v.sub_lease_until >= now();
            w.sub_last_tick := v.sub_last_tick;          w.sub_last_time := v.sub_last_time;
            w.sub_last_snapshot := v.sub_last_snapshot;  w.sub_last_seq := v.sub_last_seq;
            w.sub_next_tick := v.sub_next_tick;          w.sub_next_time := v.sub_next_time;
            w.sub_next_snapshot := v.sub_next_snapshot;  w.sub_next_seq := v.sub_next_seq;
            w.sub_ack_txid := v.sub_ack_txid;            w.sub_ack_id := v.sub_ack_id;
            w.sub_sent_txid := NULL;  w.sub_sent_id := NULL;  w.sub_done := false;
            w.sub_batch := nextval('pgque.batch_id_seq');
            PERFORM pgque._finish_batch(v);  -- v loses it; a worker's position is never read
            w.sub_lease_until := now() + lease;
            RETURN pgque._save(w);  -- saved at once: the caller may hand out nothing (paused queue)
        END LOOP;
    END IF;
    w.sub_lease_until := now() + lease;
    RETURN w;
END
$$;

-- _worker_window(w, max_return): w with the consumer's next window opened as
-- its batch when it has none and the consumer has ticked past its position;
-- the consumer's position moves to the window's end.  The consumer is
-- locked (_worker).  w itself is saved by the caller.  NULL while the queue
-- is paused, as _batch_window.
CREATE FUNCTION pgque._worker_window(w pgque.subscription, max_return int) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    c pgque.subscription;
    t pgque.tick;
BEGIN
    IF pgque._paused(w.sub_queue) THEN
        RETURN NULL;
    ELSIF w.sub_batch IS NOT NULL THEN
        RETURN w;
    END IF;
    SELECT * INTO c FROM pgque.subscription WHERE sub_id = w.sub_parent;
    -- Tick event sequences count ids handed out, rolled back ones included:
    -- a window may hold fewer events than max_return, never a gap.
    SELECT * INTO t FROM pgque.tick
     WHERE tick_queue = c.sub_queue AND tick_id > c.sub_last_tick
       AND tick_event_seq >= c.sub_last_seq + max_return
     ORDER BY tick_id LIMIT 1;
    IF NOT FOUND THEN
        t := pgque._last_tick(c.sub_queue);
    END IF;
    IF t.tick_id > c.sub_last_tick THEN
        w.sub_last_tick := c.sub_last_tick;          w.sub_last_time := c.sub_last_time;
        w.sub_last_snapshot := c.sub_last_snapshot;  w.sub_last_seq := c.sub_last_seq;
        w.sub_next_tick := t.tick_id;                w.sub_next_time := t.tick_time;
        w.sub_next_snapshot := t.tick_snapshot;      w.sub_next_seq := t.tick_event_seq;
        w.sub_ack_txid := NULL;  w.sub_ack_id := NULL;
        w.sub_sent_txid := NULL; w.sub_sent_id := NULL;
        w.sub_done := false;
        w.sub_batch := nextval('pgque.batch_id_seq');
        c.sub_last_tick := t.tick_id;             c.sub_last_time := t.tick_time;
        c.sub_last_snapshot := t.tick_snapshot;   c.sub_last_seq := t.tick_event_seq;
        PERFORM pgque._save(c);
    END IF;
    RETURN w;
END
$$;

-- heartbeat(batch_id [, lease]): keep a worker's batch for another lease
-- (default 30 seconds) from now.  Workers call it while handling a piece
-- that takes longer than their lease; receive() renews the lease as well.
-- Returns 1 when the batch is still the caller's (a plain consumer's batch
-- has no lease: 1, nothing changes), 0 when it is unknown, finished, or was
-- taken over by another worker.  Errors: PQ006 (NULL batch id, lease not positive).
CREATE FUNCTION pgque.heartbeat(batch_id bigint, lease interval DEFAULT '30 seconds') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s pgque.subscription;
BEGIN
    IF lease IS NULL OR lease <= interval '0' THEN
        PERFORM pgque._invalid('lease', format('%s (must be a positive interval)', coalesce(lease::text, 'NULL')));
    END IF;
    s := pgque._batch_sub(batch_id);
    IF s.sub_id IS NULL THEN
        RETURN 0;
    ELSIF s.sub_parent IS NOT NULL THEN
        s.sub_lease_until := now() + lease;
        PERFORM pgque._save(s);
    END IF;
    RETURN 1;
END
$$;

-- unregister_worker(queue_name, consumer_name, worker_name): forget a worker.
-- Returns 1, or 0 when there is no such worker.  Workers without a batch cost
-- nothing but their row; unregister the names that will not come back.
-- Errors: PQ001, PQ003, PQ006, PQ026 (it holds a batch: finish it, or let
-- its lease run out and another worker take it over).
CREATE FUNCTION pgque.unregister_worker(queue_name text, consumer_name text, worker_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    c pgque.subscription;
    w pgque.subscription;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    c := pgque._subscription(queue_name, consumer_name, true);
    PERFORM pgque._check_name('worker', worker_name, 63);
    SELECT * INTO w FROM pgque.subscription
     WHERE sub_queue = c.sub_queue AND sub_consumer = c.sub_consumer || '/' || worker_name;
    IF NOT FOUND THEN
        RETURN 0;
    ELSIF w.sub_batch IS NOT NULL THEN
        RAISE EXCEPTION 'pgque: worker % of consumer % holds batch %', quote_literal(worker_name),
            quote_literal(consumer_name), w.sub_batch USING ERRCODE = 'PQ026';
    END IF;
    DELETE FROM pgque.consumer WHERE sub_id = w.sub_id;
    RETURN 1;
END
$$;

-- get_worker_info(queue_name, consumer_name): one row per worker of a consumer.
--   current_batch  the batch it holds, NULL when none
--   lease_left     time until another worker may take that batch over
--                  (negative: it may already); NULL without a batch
--   last_seen      time since it last received, acked or heartbeated
-- Errors: PQ001, PQ003.
CREATE FUNCTION pgque.get_worker_info(queue_name text, consumer_name text)
RETURNS TABLE (worker_name text, current_batch bigint, lease_left interval, last_seen interval)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    c pgque.subscription := pgque._subscription($1, $2, false);
BEGIN
    RETURN QUERY
    SELECT substr(w.sub_consumer, length(c.sub_consumer) + 2), w.sub_batch,
           CASE WHEN w.sub_batch IS NOT NULL THEN w.sub_lease_until - now() END,
           now() - w.sub_active
      FROM pgque.subscription w
     WHERE w.sub_parent = c.sub_id
     ORDER BY 1;
END
$$;
