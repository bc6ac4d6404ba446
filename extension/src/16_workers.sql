-- Cooperative workers: several processes share one consumer's stream, each
-- holding a different batch (a window of the stream).
--
-- A worker is named on receive(queue, consumer, max, worker_name, lease);
-- its row (a pgque.consumer row whose sub_parent is the consumer) is made
-- the first time it is handed something.  A worker without a batch takes,
-- in this order:
--   1. the consumer's own batch, when a plain reader left it open and did
--      not touch it for a lease (receive, ack or heartbeat);
--   2. the batch of a sibling whose lease ran out (it stopped calling
--      receive/heartbeat, or gave the batch up with unregister_worker(...,
--      release)): it resumes after what that sibling acknowledged, under a
--      new batch id; the sibling's late ack or nack then fails with PQ028
--      (its last lost batch is remembered), and its heartbeat reports 0;
--   3. a new window: the next max_return rows of the consumer's stream,
--      exactly the piece it is handed.  The consumer keeps a tick range
--      open for this (sub_next_*, from its position to the newest tick at
--      the time, with sub_batch NULL) and records in sub_ack_* how far it
--      was cut; once it is cut to its end, its position moves to the
--      range's end tick and the next range opens.  A window holds the
--      rows after sub_start_* up to sub_end_*.  So a backlog, even one big
--      transaction, is shared in pieces of each worker's appetite.
-- Handing out locks the consumer row, so two workers never take the same
-- rows; ack, nack and heartbeat lock only the worker.  Leases count in
-- clock time (clock_timestamp()), from the moment a batch is handed out or
-- renewed.
--
-- Retried copies belong to the consumer, so whichever worker's window holds
-- the retry gets it; dead letters are the consumer's.  A worker without a
-- batch pins nothing: rotation looks at workers' positions only while they
-- hold a batch (and at the consumer's, the start of its open range).
-- Delivery stays at least once: a worker that was only slow may still be
-- handling the batch it lost.
--
-- Plain receive() calls on a consumer that workers read are served as the
-- worker '_plain' (07_consume.sql), so the two ways of reading mix without
-- losing or repeating anything; next_batch() refuses (PQ025) until the
-- workers' batches are finished.  Workers idle for an hour are forgotten by
-- maint() (_forget_idle_workers).

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

-- _lease(lease): lease, or the default 30 seconds for NULL.  PQ006 unless
-- it is more than 0 and at most a day (longer work keeps its batch with
-- heartbeat()).
CREATE FUNCTION pgque._lease(lease interval) RETURNS interval
LANGUAGE sql AS $$
    SELECT pgque._check_interval('lease', coalesce(lease, interval '30 seconds'), interval '0', interval '1 day', true)
$$;

-- _read_by_workers(c): does a worker of consumer c hold a batch, or is c's
-- stream being cut into windows?
CREATE FUNCTION pgque._read_by_workers(c pgque.subscription) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN c.sub_batch IS NULL
       AND (c.sub_next_tick IS NOT NULL
            OR EXISTS (SELECT 1 FROM pgque.subscription w WHERE w.sub_parent = c.sub_id AND w.sub_batch IS NOT NULL));
END
$$;

-- _take_over(w, v, lease): w takes v's batch over (its window and
-- acknowledged position), under a new batch id, for lease from now: v loses
-- it (remembered for PQ028, its last_seen kept) and both are saved.
-- Returns w.
CREATE FUNCTION pgque._take_over(w pgque.subscription, v pgque.subscription, lease interval)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    w.sub_last_tick := v.sub_last_tick;          w.sub_last_time := v.sub_last_time;
    w.sub_last_snapshot := v.sub_last_snapshot;  w.sub_last_seq := v.sub_last_seq;
    w.sub_next_tick := v.sub_next_tick;          w.sub_next_time := v.sub_next_time;
    w.sub_next_snapshot := v.sub_next_snapshot;  w.sub_next_seq := v.sub_next_seq;
    w.sub_ack_txid := v.sub_ack_txid;            w.sub_ack_id := v.sub_ack_id;
    w.sub_start_txid := v.sub_start_txid;        w.sub_start_id := v.sub_start_id;
    w.sub_end_txid := v.sub_end_txid;            w.sub_end_id := v.sub_end_id;
    w.sub_sent_txid := NULL;  w.sub_sent_id := NULL;  w.sub_done := false;  w.sub_piece := NULL;
    w.sub_batch := nextval('pgque.batch_id_seq');
    w.sub_lease_until := clock_timestamp() + lease;
    v.sub_lost_batch := v.sub_batch;
    PERFORM pgque._finish_batch(v, false);
    RETURN pgque._save(w);  -- saved at once: the caller may hand out nothing (paused queue)
END
$$;

-- _worker(c, worker_name, lease): worker worker_name of consumer c (locked
-- by the caller), locked, with a batch taken over when it has none (see the
-- top of this file), and its lease set to lease from now (saved with its
-- next state; lease is checked by the caller).  A worker that has no row
-- yet comes back with a NULL sub_id; _save() makes its row.  Errors: PQ025.
CREATE FUNCTION pgque._worker(c pgque.subscription, worker_name text, lease interval)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    name  text := c.sub_consumer || '/' || worker_name;
    id    int;
    w     pgque.subscription;
    v     pgque.subscription;
    tried int[] := '{}';
BEGIN
    IF c.sub_batch IS NOT NULL AND c.sub_active >= clock_timestamp() - lease THEN
        RAISE EXCEPTION 'pgque: consumer % has batch % of a plain reader open; its workers wait until it is finished, or untouched for a lease (%)',
            quote_literal(c.sub_consumer), c.sub_batch, lease USING ERRCODE = 'PQ025',
            HINT = 'A plain reader (receive() without a worker name, or next_batch()) holds it; a worker takes it over once nobody touched it for the lease.';
    END IF;
    SELECT x.sub_id INTO id FROM pgque.consumer x
     WHERE x.sub_queue = c.sub_queue AND x.sub_consumer = name FOR UPDATE;
    IF FOUND THEN
        SELECT * INTO w FROM pgque.subscription WHERE sub_id = id;
    ELSE
        -- A state to start from (NOT NULL columns); a worker's own position is never read.
        w := pgque._clear_batch(c);
        w.sub_id := NULL;  w.sub_consumer := name;  w.sub_parent := c.sub_id;
    END IF;
    IF w.sub_batch IS NULL AND c.sub_batch IS NOT NULL THEN
        -- The plain reader's batch, untouched for a lease: it goes on here.
        RETURN pgque._take_over(w, c, lease);
    ELSIF w.sub_batch IS NULL THEN
        LOOP  -- the oldest window whose lease ran out (a single SELECT: usually there is none)
            SELECT * INTO v FROM pgque.subscription
             WHERE sub_parent = c.sub_id AND sub_batch IS NOT NULL AND sub_lease_until < clock_timestamp()
               AND sub_id <> ALL (tried)
             ORDER BY sub_last_tick, sub_start_txid NULLS FIRST, sub_start_id NULLS FIRST LIMIT 1;
            EXIT WHEN NOT FOUND;
            tried := tried || v.sub_id;
            -- Its ack or heartbeat may be under way: decide after it commits.
            PERFORM 1 FROM pgque.consumer WHERE sub_id = v.sub_id FOR UPDATE;
            SELECT * INTO v FROM pgque.subscription WHERE sub_id = v.sub_id;
            CONTINUE WHEN v.sub_batch IS NULL OR v.sub_lease_until >= clock_timestamp();
            RETURN pgque._take_over(w, v, lease);
        END LOOP;
    END IF;
    w.sub_lease_until := clock_timestamp() + lease;
    RETURN w;
END
$$;

-- _worker_range(w): the consumer of worker w (locked by _receiver), with
-- the tick range its workers' windows are cut from open: the one it has
-- (sub_next_*, cut up to sub_ack_*), or a new one from its position to the
-- newest tick; in memory only.  sub_next_tick is NULL when nothing was
-- ticked past its position.
CREATE FUNCTION pgque._worker_range(w pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    c pgque.subscription;
    t pgque.tick;
BEGIN
    SELECT * INTO c FROM pgque.subscription WHERE sub_id = w.sub_parent;
    IF c.sub_next_tick IS NULL THEN
        t := pgque._last_tick(c.sub_queue);
        IF t.tick_id > c.sub_last_tick THEN
            c := pgque._range_to(c, t);
            c.sub_ack_txid := NULL;  c.sub_ack_id := NULL;
        END IF;
    END IF;
    RETURN c;
END
$$;

-- _window_of(w, c): w holding, as a new batch, the rest of consumer c's
-- open tick range (after the rows cut from it so far); in memory only, w's
-- lease kept.  Its end is set once its first piece is read (_save_piece):
-- a new window is exactly the piece it was opened for.
CREATE FUNCTION pgque._window_of(w pgque.subscription, c pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    lease timestamptz := w.sub_lease_until;
BEGIN
    w := pgque._clear_batch(w);
    w.sub_last_tick := c.sub_last_tick;          w.sub_last_time := c.sub_last_time;
    w.sub_last_snapshot := c.sub_last_snapshot;  w.sub_last_seq := c.sub_last_seq;
    w.sub_next_tick := c.sub_next_tick;          w.sub_next_time := c.sub_next_time;
    w.sub_next_snapshot := c.sub_next_snapshot;  w.sub_next_seq := c.sub_next_seq;
    w.sub_start_txid := c.sub_ack_txid;          w.sub_start_id := c.sub_ack_id;
    w.sub_batch := nextval('pgque.batch_id_seq');
    w.sub_lease_until := lease;
    RETURN w;
END
$$;

-- heartbeat(batch_id [, lease]): keep the batch that the piece batch_id
-- came from for another lease (default 30 seconds) from now.  Workers call
-- it while handling a piece that takes longer than their lease; receive()
-- renews the lease as well.  For a plain reader's batch it records that
-- the reader is alive, so that no worker takes the batch over.
-- Returns 1 when the batch is still the caller's, 0 when the piece is
-- unknown, or its batch was finished or taken over by another worker; 2
-- when it is still the caller's but cancel() took back a message of the
-- piece (21_jobs.sql): stop handling that message (cancelled_messages()
-- says which) and ack the piece.
-- Errors: PQ006 (NULL batch id, lease not in (0, 1 day]; NULL means 30
-- seconds), PQ027 (a batch id).
CREATE FUNCTION pgque.heartbeat(batch_id bigint, lease interval DEFAULT '30 seconds') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    p record;
    s pgque.subscription;
BEGIN
    lease := pgque._lease(lease);
    SELECT * INTO p FROM pgque._piece(batch_id);
    s := p.s;
    IF s.sub_id IS NULL THEN
        RETURN 0;
    ELSIF s.sub_parent IS NOT NULL THEN
        s.sub_lease_until := clock_timestamp() + lease;
    END IF;
    PERFORM pgque._save(s);
    RETURN CASE WHEN EXISTS (SELECT FROM pgque._piece_cancelled(s, p.end_txid, p.end_id)) THEN 2 ELSE 1 END;
END
$$;

-- unregister_worker(queue_name, consumer_name, worker_name [, release]):
-- forget a worker.  A worker that holds a batch is refused (PQ026), unless
-- release is true: then its lease ends now, so its batch goes to the next
-- worker that receives (after what it acknowledged), and maint() forgets
-- the worker later; the queue's channel is notified (as by a tick), so
-- that waiting workers of every process take the batch over at once.
-- Workers call it with release when they stop.
-- Returns 1, or 0 when there is no such worker.  Workers without a batch
-- cost nothing but their row; maint() forgets them after an hour idle.
-- Errors: PQ001, PQ003, PQ006, PQ026 (it holds a batch and release is
-- false: finish it, or let its lease run out and another worker take it
-- over).
CREATE FUNCTION pgque.unregister_worker(queue_name text, consumer_name text, worker_name text,
                                        release boolean DEFAULT false) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    c pgque.subscription;
    w pgque.subscription;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    c := pgque._subscription(queue_name, consumer_name, true);
    PERFORM pgque._check_name('worker', worker_name, 63);
    PERFORM 1 FROM pgque.consumer
     WHERE sub_queue = c.sub_queue AND sub_consumer = c.sub_consumer || '/' || worker_name FOR UPDATE;
    SELECT * INTO w FROM pgque.subscription
     WHERE sub_queue = c.sub_queue AND sub_consumer = c.sub_consumer || '/' || worker_name;
    IF NOT FOUND THEN
        RETURN 0;
    ELSIF w.sub_batch IS NULL THEN
        DELETE FROM pgque.consumer WHERE sub_id = w.sub_id;
    ELSIF coalesce(release, false) THEN
        w.sub_lease_until := clock_timestamp();
        PERFORM pgque._save(w);
        PERFORM pg_notify(pgque._channel(queue_name), (pgque._last_tick(c.sub_queue)).tick_id::text);
    ELSE
        RAISE EXCEPTION 'pgque: worker % of consumer % holds batch %', quote_literal(worker_name),
            quote_literal(consumer_name), w.sub_batch USING ERRCODE = 'PQ026',
            HINT = 'Pass release => true to hand the batch to the other workers now.';
    END IF;
    RETURN 1;
END
$$;

-- _forget_idle_workers(idle): remove the workers that hold no batch and
-- were not seen for idle (maint(): an hour), such as those of processes
-- that died; skips consumers that are busy handing out.  A worker that comes
-- back is made again.  Returns how many were removed.
CREATE FUNCTION pgque._forget_idle_workers(idle interval) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    w pgque.subscription;
    n int := 0;
BEGIN
    FOR w IN SELECT * FROM pgque.subscription
              WHERE sub_parent IS NOT NULL AND sub_batch IS NULL AND sub_active < now() - idle
    LOOP
        -- Handing out locks the consumer first: with it, nothing is taking
        -- or giving this worker a batch.
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pgque.consumer WHERE sub_id = w.sub_parent FOR UPDATE SKIP LOCKED);
        CONTINUE WHEN NOT EXISTS (SELECT 1 FROM pgque.consumer WHERE sub_id = w.sub_id FOR UPDATE SKIP LOCKED);
        SELECT * INTO w FROM pgque.subscription WHERE sub_id = w.sub_id;
        CONTINUE WHEN w.sub_batch IS NOT NULL OR w.sub_active >= now() - idle;
        DELETE FROM pgque.consumer WHERE sub_id = w.sub_id;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- get_worker_info(queue_name, consumer_name): one row per worker of a consumer.
--   current_batch  the batch it holds, NULL when none
--   lease_left     time until another worker may take that batch over
--                  (negative: it may already); NULL without a batch
--   last_seen      time since it last received, acked or heartbeated
-- '_plain' is the worker that serves plain receive() calls while workers
-- read the consumer.  Errors: PQ001, PQ003.
CREATE FUNCTION pgque.get_worker_info(queue_name text, consumer_name text)
RETURNS TABLE (worker_name text, current_batch bigint, lease_left interval, last_seen interval)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    c pgque.subscription := pgque._subscription($1, $2, false);
BEGIN
    RETURN QUERY
    SELECT substr(w.sub_consumer, length(c.sub_consumer) + 2), w.sub_batch,
           CASE WHEN w.sub_batch IS NOT NULL THEN w.sub_lease_until - clock_timestamp() END,
           now() - w.sub_active
      FROM pgque.subscription w
     WHERE w.sub_parent = c.sub_id
     ORDER BY 1;
END
$$;
