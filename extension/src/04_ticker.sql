-- Ticks.  A tick records a snapshot; batches are the events whose
-- transactions became visible between two ticks.  Ticks of one queue are
-- serialized by an advisory lock taken BEFORE the snapshot, so tick snapshots
-- only ever move forward.  Each tick NOTIFYs channel 'pgque_<queue name>'
-- (payload: the tick id) when its transaction commits.

-- _tick(q, last, seq_now): insert a tick now.  Caller holds the tick lock and
-- read seq_now (the event sequence) before this call takes the snapshot.
-- Producers get their xid before drawing an event id, so every event counted
-- in seq_now is visible in the snapshot or belongs to a transaction that was
-- still running; those are remembered in tick_pending so that the ticker ticks
-- again as soon as one of them ends.  A snapshot lists running xids only below
-- its xmax (latest completed xid + 1), so the xids from xmax up to our own
-- (assigned after seq_now was read) count as pending too.
CREATE FUNCTION pgque._tick(q pgque.queue, last pgque.tick, seq_now bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    snap    pg_snapshot := pg_current_snapshot();
    own     xid8 := pg_current_xact_id();
    pending xid8[];
    id      bigint;
BEGIN
    IF last.tick_id IS NULL OR seq_now > last.tick_event_seq THEN
        pending := ARRAY(SELECT pg_snapshot_xip(snap)
                         UNION ALL
                         SELECT x::text::xid8
                           FROM generate_series(pg_snapshot_xmax(snap)::text::bigint, own::text::bigint - 1) x);
    ELSE
        pending := ARRAY(SELECT x FROM unnest(last.tick_pending) x WHERE NOT pg_visible_in_snapshot(x, snap));
    END IF;
    INSERT INTO pgque.tick (tick_part, tick_queue, tick_id, tick_time, tick_snapshot, tick_event_seq, tick_pending)
    VALUES (pgque._log_part(), q.queue_id, nextval('pgque.tick_id_seq'), now(), snap, seq_now, nullif(pending, '{}'))
    RETURNING tick_id INTO id;
    PERFORM pg_notify(pgque._channel(q.queue_name), id::text);
    RETURN id;
END
$$;

-- _last_tick(queue_id): the newest tick of a queue.
-- PL/pgSQL so that its plan is kept: as a SQL function over the partitioned
-- log it was planned again in every transaction (measured: about 0.1 ms of
-- each receive, per call).
CREATE FUNCTION pgque._last_tick(queue_id int) RETURNS pgque.tick
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t pgque.tick;
BEGIN
    SELECT * INTO t FROM pgque.tick x WHERE x.tick_queue = _last_tick.queue_id ORDER BY x.tick_id DESC LIMIT 1;
    RETURN t;
END
$$;

-- _tick_due(queue_id): tick the queue if it is due (see ticker(queue_name)).
-- Skips (NULL) when another session is ticking it or drop_queue holds it,
-- and when it is gone: drop_queue takes the tick lock before it drops
-- anything, so once we hold the lock, a queue row read now (a fresh READ
-- COMMITTED snapshot) has its sequences and tables.
CREATE FUNCTION pgque._tick_due(queue_id int) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    q       pgque.queue;
    last    pgque.tick;
    seq_now bigint;
BEGIN
    IF NOT pg_try_advisory_xact_lock(pgque._lock_ns(), queue_id) THEN
        RETURN NULL;
    END IF;
    SELECT * INTO q FROM pgque.queue x WHERE x.queue_id = _tick_due.queue_id;
    IF NOT FOUND THEN
        RETURN NULL;
    END IF;
    last := pgque._last_tick(q.queue_id);
    seq_now := pgque._seq_value(q.queue_event_seq);
    IF last.tick_id IS NULL
       OR (seq_now > last.tick_event_seq
           AND (seq_now - last.tick_event_seq >= q.queue_ticker_max_count
                OR now() - last.tick_time >= q.queue_ticker_max_lag))
       OR (seq_now <= last.tick_event_seq
           AND (now() - last.tick_time >= q.queue_ticker_idle_period
                OR EXISTS (SELECT 1 FROM unnest(last.tick_pending) x
                            WHERE pg_visible_in_snapshot(x, pg_current_snapshot()))))
    THEN
        RETURN pgque._tick(q, last, seq_now);
    END IF;
    RETURN NULL;
END
$$;

-- ticker(queue_name): tick the queue if it is due:
--   * events are waiting and ticker_max_count of them piled up or
--     ticker_max_lag passed since the last tick;
--   * a transaction that was in progress at the last tick, and may have
--     written events counted then, has finished (so its events are not held
--     back until the next idle tick);
--   * the queue was idle for ticker_idle_period.
-- Skips (NULL) when another session is ticking the queue right now, or
-- drop_queue() is dropping it.  Errors raise here (ticker() records them
-- instead).  Must run in its own READ COMMITTED transaction.
-- Returns the new tick id or NULL.  Errors: PQ001, PQ009.
CREATE FUNCTION pgque.ticker(queue_name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._require_read_committed('ticker()');
    RETURN pgque._tick_due(q.queue_id);
END
$$;

-- ticker(): tick every queue that is due (see ticker(queue_name)), then
-- publish the delayed events that came due (13_delayed.sql; nearly free when
-- none did).  They go in after the ticks, so they move the event sequences
-- past what the ticks recorded and the next call ticks them.
-- One queue never stops the others: the queues are ticked in one
-- subtransaction, and only when that fails again each in its own, so that
-- a failing queue's error is recorded (step 'tick' in get_queue_info(),
-- cleared by its next successful tick) and logged as a WARNING, and every
-- other queue ticks.  Queues with a recorded failure get a subtransaction
-- of their own from the start, so that a queue that keeps failing does not
-- make every call take the slow way.
-- Returns how many queues ticked.  Errors: PQ009.
CREATE FUNCTION pgque.ticker() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    ids     int[];
    failing int[];
    id      int;
    n       int := 0;
    mover   record;
BEGIN
    PERFORM pgque._require_read_committed('ticker()');
    mover := pgque._mover_view(true);  -- before a tick gives this transaction its xid
    ids := ARRAY(SELECT queue_id FROM pgque.queue ORDER BY queue_name);
    failing := ARRAY(SELECT e.qe_queue FROM pgque.queue_error e WHERE e.qe_step = 'tick' ORDER BY 1);
    BEGIN
        FOREACH id IN ARRAY ids LOOP
            CONTINUE WHEN id = ANY (failing);
            IF pgque._tick_due(id) IS NOT NULL THEN
                n := n + 1;
            END IF;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        -- The ticks of the block are rolled back with it: tick again, one
        -- subtransaction per queue.
        n := 0;
        failing := ids;
    END;
    FOREACH id IN ARRAY failing LOOP
        CONTINUE WHEN NOT id = ANY (ids);  -- not a queue read above: dropped (maint() deletes the record)
        BEGIN
            IF pgque._tick_due(id) IS NOT NULL THEN
                n := n + 1;
            END IF;
            PERFORM pgque._steps_ok('tick', ARRAY[id]);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pgque._step_failed(id, 'tick', SQLSTATE, SQLERRM);
        END;
    END LOOP;
    PERFORM pgque._delayed_tick(mover.cnt, mover.snap, mover.exact);
    RETURN n;
END
$$;

-- force_tick(queue_name): tick now, whatever the thresholds; waits for a
-- concurrent ticker of the same queue.  For tests, demos and scripts: send,
-- commit, force_tick, commit, then receive.
-- Must run in its own READ COMMITTED transaction.
-- Returns the new tick id.  Errors: PQ001, PQ009.
CREATE FUNCTION pgque.force_tick(queue_name text) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q       pgque.queue := pgque._queue(queue_name);
    seq_now bigint;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._require_read_committed('force_tick()');
    PERFORM pg_advisory_xact_lock(pgque._lock_ns(), q.queue_id);
    IF NOT EXISTS (SELECT 1 FROM pgque.queue x WHERE x.queue_id = q.queue_id) THEN
        PERFORM pgque._queue(queue_name);  -- dropped while we waited: raises PQ001
    END IF;
    seq_now := pgque._seq_value(q.queue_event_seq);
    RETURN pgque._tick(q, pgque._last_tick(q.queue_id), seq_now);
END
$$;
