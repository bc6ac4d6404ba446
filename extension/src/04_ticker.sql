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
-- count as pending too.  That needs our xid to be assigned after seq_now
-- was read: the caller reads it before its transaction has an xid (ticker()
-- reads every queue's sequence before its first tick; tick_late_xid.spec).
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

-- _due(q, last, seq_now): whether queue q, whose newest tick is last and
-- whose event sequence is at seq_now, is due for a tick (the conditions of
-- ticker(queue_name)).
CREATE FUNCTION pgque._due(q pgque.queue, last pgque.tick, seq_now bigint) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF last.tick_id IS NULL THEN
        RETURN true;
    ELSIF seq_now > last.tick_event_seq THEN
        RETURN seq_now - last.tick_event_seq >= q.queue_ticker_max_count
            OR now() - last.tick_time >= q.queue_ticker_max_lag;
    ELSIF now() - last.tick_time >= q.queue_ticker_idle_period THEN
        RETURN true;
    END IF;
    RETURN last.tick_pending IS NOT NULL
       AND EXISTS (SELECT 1 FROM unnest(last.tick_pending) x WHERE pg_visible_in_snapshot(x, pg_current_snapshot()));
END
$$;

-- _tick_lock(queue_id): take the queue's tick lock, if no one else holds
-- it, and read the queue and its event sequence under it; a NULL row
-- when another session is ticking it, drop_queue holds it, or it is gone:
-- drop_queue takes the tick lock before it drops anything, so once we hold
-- the lock, a queue row read now (a fresh READ COMMITTED snapshot) has its
-- sequences and tables.
CREATE FUNCTION pgque._tick_lock(queue_id int, OUT q pgque.queue, OUT seq_now bigint)
LANGUAGE plpgsql AS $$
BEGIN
    IF pg_try_advisory_xact_lock(pgque._lock_ns(), queue_id) THEN
        SELECT * INTO q FROM pgque.queue x WHERE x.queue_id = _tick_lock.queue_id;
        IF FOUND THEN
            seq_now := pgque._seq_value(q.queue_event_seq);
        END IF;
    END IF;
END
$$;

-- _tick_if_due(q, seq_now): tick q (locked by _tick_lock, which read
-- seq_now) if it is due; the new tick id or NULL.
CREATE FUNCTION pgque._tick_if_due(q pgque.queue, seq_now bigint) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    last pgque.tick := pgque._last_tick(q.queue_id);
BEGIN
    IF pgque._due(q, last, seq_now) THEN
        RETURN pgque._tick(q, last, seq_now);
    END IF;
    RETURN NULL;
END
$$;

-- _lock_budget(): how many locks one of pgque's periodic calls may take
-- at once: an eighth of the lock table that every session shares
-- (max_locks_per_transaction × (max_connections +
-- max_prepared_transactions) entries, counting client backends only), at
-- least 16.  With the defaults, 800.
CREATE FUNCTION pgque._lock_budget() RETURNS int
LANGUAGE sql STABLE AS $$
    SELECT greatest(16, current_setting('max_locks_per_transaction')::int
                        * (current_setting('max_connections')::int + current_setting('max_prepared_transactions')::int) / 8)
$$;

-- _queue_dropping(queue_id): whether a drop_queue() of the queue is under
-- way (it holds the lock _queue_live tries), without keeping a lock.
CREATE FUNCTION pgque._queue_dropping(queue_id int) RETURNS boolean
LANGUAGE sql AS $$
    SELECT CASE WHEN pg_try_advisory_lock_shared(pgque._lock_ns() + 4, queue_id)
                THEN NOT pg_advisory_unlock_shared(pgque._lock_ns() + 4, queue_id)
                ELSE true END
$$;

-- _due_queues(max_queues): the queues due for a tick (see _due), the
-- longest untouched first, at most max_queues of them: one query over
-- every queue, without the per-queue tick locks (_tick_if_due decides again
-- under the queue's lock).  When it fails (a queue dropped under it),
-- the first max_queues queues are the candidates.  Each sequence read still locks the sequence
-- until the transaction ends (PostgreSQL takes sequence locks for the
-- whole transaction), one lock per queue: docs/operations.md, "Many
-- queues".
CREATE FUNCTION pgque._due_queues(max_queues int) RETURNS int[]
LANGUAGE plpgsql AS $$
BEGIN
    -- A queue that drop_queue() holds is skipped, not waited for; CASE
    -- keeps that test before the sequence read.
    RETURN ARRAY(SELECT q.queue_id
                   FROM pgque.queue q CROSS JOIN LATERAL pgque._last_tick(q.queue_id) t
                  WHERE CASE WHEN pgque._queue_dropping(q.queue_id) THEN false
                             ELSE pgque._due(q, t, pgque._seq_value(q.queue_event_seq)) END
                  ORDER BY t.tick_time NULLS FIRST, q.queue_id
                  LIMIT max_queues);
EXCEPTION WHEN OTHERS THEN
    RETURN ARRAY(SELECT x.queue_id FROM pgque.queue x ORDER BY x.queue_id LIMIT max_queues);
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
    l record;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._require_read_committed('ticker()');
    l := pgque._tick_lock(q.queue_id);
    IF (l.q).queue_id IS NULL THEN
        RETURN NULL;
    END IF;
    RETURN pgque._tick_if_due(l.q, l.seq_now);
END
$$;

-- ticker(): tick every queue that is due (see ticker(queue_name)), up to
-- half the lock budget of them (400 with PostgreSQL's default settings,
-- see _lock_budget), those untouched longest first: the next call ticks
-- the rest, as each tick holds two locks until the transaction ends and
-- the lock table is shared and bounded (queues with a recorded failure
-- come on top).  Then publish the delayed events that came due
-- (13_delayed.sql; nearly free when none did).  They go in after the
-- ticks, so they move the event sequences past what the ticks recorded and
-- the next call ticks them.  Which queues are due is looked up in one
-- query (_due_queues) rather than queue by queue.
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
    l       record;
    qs      pgque.queue[] := '{}';  -- the queues locked to tick, and their sequences
    seqs    bigint[] := '{}';
    redo    boolean[] := '{}';      -- tick in a subtransaction of its own
    bad     int[] := '{}';          -- failed before ticking: recorded after
    states  text[] := '{}';
    msgs    text[] := '{}';
BEGIN
    PERFORM pgque._require_read_committed('ticker()');
    mover := pgque._mover_view(true);  -- before a tick gives this transaction its xid
    ids := pgque._due_queues(pgque._lock_budget() / 2);
    -- Queues whose tick failed are tried again, due or not, so that their
    -- record clears once they tick; those gone since are not.
    failing := ARRAY(SELECT e.qe_queue FROM pgque.queue_error e JOIN pgque.queue q ON q.queue_id = e.qe_queue
                      WHERE e.qe_step = 'tick' ORDER BY 1);
    -- Every queue is locked and its sequence read before this transaction
    -- gets its xid (its first tick gives it one): a producer whose event a
    -- sequence read counts got its xid before that, so every tick's
    -- snapshot sees it as running or finished (see _tick).  Read after the
    -- first tick, a later queue's count could include a producer that got
    -- its xid after ours, which no tick would wait for: its events would
    -- wait for the next idle tick.
    FOREACH id IN ARRAY ids || ARRAY(SELECT x FROM unnest(failing) x WHERE NOT x = ANY (ids)) LOOP
        BEGIN
            l := pgque._tick_lock(id);
            IF (l.q).queue_id IS NOT NULL THEN
                qs := qs || l.q;
                seqs := seqs || l.seq_now;
                redo := redo || (id = ANY (failing));
            END IF;
        EXCEPTION WHEN OTHERS THEN
            bad := bad || id;  states := states || SQLSTATE;  msgs := msgs || SQLERRM;
        END;
    END LOOP;
    BEGIN
        FOR i IN 1 .. cardinality(qs) LOOP
            CONTINUE WHEN redo[i];
            IF pgque._tick_if_due(qs[i], seqs[i]) IS NOT NULL THEN
                n := n + 1;
            END IF;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        -- The ticks of the block are rolled back with it: tick again, one
        -- subtransaction per queue.
        n := 0;
        redo := array_fill(true, ARRAY[cardinality(qs)]);
    END;
    FOR i IN 1 .. cardinality(qs) LOOP
        CONTINUE WHEN NOT redo[i];
        BEGIN
            IF pgque._tick_if_due(qs[i], seqs[i]) IS NOT NULL THEN
                n := n + 1;
            END IF;
            PERFORM pgque._steps_ok('tick', ARRAY[qs[i].queue_id]);
        EXCEPTION WHEN OTHERS THEN
            PERFORM pgque._step_failed(qs[i].queue_id, 'tick', SQLSTATE, SQLERRM);
        END;
    END LOOP;
    FOR i IN 1 .. cardinality(bad) LOOP
        PERFORM pgque._step_failed(bad[i], 'tick', states[i], msgs[i]);
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
