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
-- Returns the new tick's id, and whether it waits for no running
-- transaction (settled, see _tick_if_due).
CREATE FUNCTION pgque._tick(q pgque.queue, last pgque.tick, seq_now bigint, OUT id bigint, OUT settled boolean)
LANGUAGE plpgsql AS $$
DECLARE
    snap    pg_snapshot := pg_current_snapshot();
    own     xid8 := pg_current_xact_id();
    pending xid8[];
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
    settled := pending IS NULL OR pending = '{}';
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

-- _due(q, last, seq_now, early): whether queue q, whose newest tick is last
-- and whose event sequence is at seq_now, is due for a tick (the conditions
-- of ticker(queue_name)).  With early, an idle queue is due from three
-- quarters of its ticker_idle_period on, so that idle queues tick together
-- (_idle_queues).
CREATE FUNCTION pgque._due(q pgque.queue, last pgque.tick, seq_now bigint, early boolean DEFAULT false)
RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
DECLARE
    idle interval := q.queue_ticker_idle_period * (CASE WHEN early THEN 0.75 ELSE 1 END);
BEGIN
    IF last.tick_id IS NULL THEN
        RETURN true;
    ELSIF seq_now > last.tick_event_seq THEN
        RETURN seq_now - last.tick_event_seq >= q.queue_ticker_max_count
            OR now() - last.tick_time >= q.queue_ticker_max_lag;
    ELSIF now() - last.tick_time >= idle THEN
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

-- _tick_if_due(q, last, seq_now, early): tick q (locked by _tick_lock,
-- which read seq_now; last is its newest tick) if it is due (_due).
-- Returns the new tick id or NULL, and whether the queue is settled
-- afterwards: every event counted in seq_now is in a tick that waits for
-- no running transaction, so nothing but a new send makes it due (or its
-- idle period).
CREATE FUNCTION pgque._tick_if_due(q pgque.queue, last pgque.tick, seq_now bigint, early boolean,
                                   OUT id bigint, OUT settled boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF pgque._due(q, last, seq_now, early) THEN
        SELECT * INTO id, settled FROM pgque._tick(q, last, seq_now);
    ELSE
        settled := last.tick_id IS NOT NULL AND seq_now = last.tick_event_seq AND last.tick_pending IS NULL;
    END IF;
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

-- Hints.  ticker() must not look at every queue on every call: with
-- thousands of idle queues that would cost a core.  It looks only at the
-- queues of a group (the 64 queues of an event partition group) whose send
-- hint moved, and at queues due for their idle tick.
--   * A writer of events draws from its group's hint sequence after it drew
--     its event ids (_writable, _count_events).
--   * ticker() reads the hint before it reads the group's event sequences
--     (under each queue's tick lock), and when every queue of the group
--     was settled by that look (_tick_if_due) it stores the value it read
--     in the group's g_seen.  A group whose hint equals g_seen needs no
--     look: every event a hint draw up to that value announced was counted
--     by the look that settled the group, and is in a tick.  A draw after
--     the read moves the hint past g_seen.
--   * A group that is not settled (events not yet due, transactions still
--     running at its last tick, a queue locked elsewhere, a queue being
--     created, a failure) keeps g_seen behind and is looked at again.
--   * g_seen is written in the transaction's stead (sequences are not
--     transactional), so it must not outlive ticks that roll back: the call
--     writes its xid to pgque.tick_pass before it writes any g_seen, and
--     the next call that finds that transaction aborted marks every group
--     unseen.  Calls that write g_seen are serialized by an advisory lock;
--     a call that cannot take it ticks without marking anything.
--   * The first draw after a mark (g_seen + 1) also notifies 'pgque:wake'
--     (_wake, 03_produce.sql), so that a ticker polling slowly while
--     nothing happens can tick at once.
--   * The sequences are unlogged: drawing from them writes no WAL and gives
--     no xid (the ticker reads every sequence before its transaction has
--     one, see _tick), and a crash or a promotion resets them to "never
--     called", which reads as unseen.

-- _hint_pass(): whether this ticker() call may mark groups seen: it holds
-- the marking lock until its transaction ends.  When the last marking call
-- rolled back, every group is marked unseen first.
CREATE FUNCTION pgque._hint_pass() RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    x bigint := pg_sequence_last_value('pgque.tick_pass');
BEGIN
    IF NOT pg_try_advisory_xact_lock(pgque._lock_ns() + 7, 0) THEN
        RETURN false;
    END IF;
    IF coalesce(x, 0) <> 0 AND pg_xact_status(x::text::xid8) IS DISTINCT FROM 'committed' THEN
        -- Aborted (in progress cannot be: it held the lock we hold now).
        -- NULL is too old to tell: rare enough to look everywhere once.
        PERFORM setval(g.g_seen, -1) FROM pgque.event_group g;
        PERFORM setval('pgque.tick_pass', 0);
    END IF;
    RETURN true;
END
$$;

-- _dirty_groups(): the groups whose hint is not marked seen, with the
-- hint values read, and how many groups there are.  A hint never drawn
-- from reads as 0; a g_seen never set (a new group, or after a crash)
-- as unseen.  One sequence lock per
-- group and sequence, held until the transaction ends.
CREATE FUNCTION pgque._dirty_groups(OUT ids int[], OUT seens regclass[], OUT vals bigint[], OUT total int)
LANGUAGE plpgsql AS $$
BEGIN
    SELECT coalesce(array_agg(x.g_id ORDER BY x.g_id) FILTER (WHERE x.dirty), '{}'),
           coalesce(array_agg(x.g_seen ORDER BY x.g_id) FILTER (WHERE x.dirty), '{}'),
           coalesce(array_agg(x.h ORDER BY x.g_id) FILTER (WHERE x.dirty), '{}'),
           count(*)
      INTO ids, seens, vals, total
      FROM (SELECT g.g_id, g.g_seen, v.h, v.seen IS NULL OR v.h <> v.seen AS dirty
              FROM pgque.event_group g
             CROSS JOIN LATERAL (SELECT coalesce(pg_sequence_last_value(g.g_hint), 0) AS h,
                                        pg_sequence_last_value(g.g_seen) AS seen) v) x;
END
$$;

-- _group_members(g): the queues of group g that exist now and may need a
-- look, how many queues the group has, and whether that is all of them:
-- not when a create_queue() of the group is under way (it holds the
-- group's lock), as its queue, which may already have written events and
-- drawn from the hint, is not visible yet.  The lock is tried before the
-- queues are read, so a creator that committed before is seen.
-- A queue needs no look when its event sequence, read now, is what its
-- newest tick counted and that tick waits for no transaction: it is
-- settled (_tick_if_due) already, and every event the hint read before
-- announced drew its id before this read.  Sending into one queue of a
-- group then costs the call one look, not one per queue of the group
-- (idle ticks come from _idle_queues).  A sequence is read under the
-- queue's tick lock (as in _tick_lock), so that a drop_queue() under way
-- is not waited for: its queue needs a look, which finds it locked.  A
-- drop that committed since the queue row was read fails the read: then
-- every queue is looked at.  Each queue of the group (total) holds its
-- tick lock and a sequence lock until the transaction ends.
CREATE FUNCTION pgque._group_members(g int, OUT members int[], OUT total int, OUT complete boolean)
LANGUAGE plpgsql AS $$
BEGIN
    complete := pg_try_advisory_lock_shared(pgque._lock_ns() + 6, g);
    IF complete THEN
        PERFORM pg_advisory_unlock_shared(pgque._lock_ns() + 6, g);
    END IF;
    BEGIN
        SELECT coalesce(array_agg(m.queue_id ORDER BY m.queue_id) FILTER (WHERE NOT m.settled), '{}'), count(*)
          INTO members, total
          FROM (SELECT q.queue_id,
                       CASE WHEN pg_try_advisory_xact_lock(pgque._lock_ns(), q.queue_id)
                            THEN coalesce(t.tick_pending IS NULL
                                          AND t.tick_event_seq = pgque._seq_value(q.queue_event_seq), false)
                            ELSE false END AS settled
                  FROM pgque.queue q
                  JOIN pgque.event_group x ON x.g_hint = q.queue_hint_seq
                  LEFT JOIN LATERAL (SELECT y.tick_event_seq, y.tick_pending FROM pgque.tick y
                                      WHERE y.tick_queue = q.queue_id ORDER BY y.tick_id DESC LIMIT 1) t ON true
                 WHERE x.g_id = g) m;
    EXCEPTION WHEN OTHERS THEN
        members := ARRAY(SELECT q.queue_id FROM pgque.queue q JOIN pgque.event_group x ON x.g_hint = q.queue_hint_seq
                          WHERE x.g_id = g ORDER BY q.queue_id);
        total := cardinality(members);
    END;
END
$$;

-- _idle_queues(max_queues): the queues ripe for an idle tick (three
-- quarters of their ticker_idle_period since their newest tick), the
-- longest untouched first, at most max_queues of them, and when to look
-- again: when the first of the others will be due, or of those once
-- ticked, at the latest in 10 seconds (a create_queue or set_queue_config
-- that resets pgque.idle_due before it commits is seen then), at once when
-- more were ripe than taken.  Reads no sequence: one query over the newest
-- tick of every queue.
CREATE FUNCTION pgque._idle_queues(max_queues int, OUT ids int[], OUT next_due timestamptz)
LANGUAGE plpgsql AS $$
DECLARE
    more boolean;
BEGIN
    WITH t AS MATERIALIZED (
             -- The newest tick inline, not _last_tick(): planned once for
             -- the whole query, a lookup costs a third (4 against 15 µs).
             SELECT q.queue_id, x.tick_time, q.queue_ticker_idle_period AS idle
               FROM pgque.queue q
               LEFT JOIN LATERAL (SELECT y.tick_time FROM pgque.tick y WHERE y.tick_queue = q.queue_id
                                   ORDER BY y.tick_id DESC LIMIT 1) x ON true),
         ripe AS (
             SELECT t.queue_id, t.idle FROM t
              WHERE t.tick_time IS NULL OR now() - t.tick_time >= t.idle * 0.75
              ORDER BY t.tick_time NULLS FIRST, t.queue_id
              LIMIT max_queues + 1)
    SELECT ARRAY(SELECT r.queue_id FROM ripe r LIMIT max_queues),
           (SELECT count(*) > max_queues FROM ripe),
           least(now() + interval '10 seconds',
                 (SELECT min(t.tick_time + t.idle) FROM t WHERE t.queue_id NOT IN (SELECT r.queue_id FROM ripe r)),
                 now() + (SELECT min(r.idle) FROM ripe r))
      INTO ids, more, next_due;
    IF more THEN
        next_due := now();
    END IF;
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
    RETURN (pgque._tick_if_due(l.q, pgque._last_tick(q.queue_id), l.seq_now, false)).id;
END
$$;

-- ticker(): tick every queue that is due (see ticker(queue_name)), looking
-- only where a send hint moved and at queues ripe for their idle tick
-- (see "Hints" above): with nothing sent, a call costs about the same with
-- ten queues or ten thousand.  Idle queues tick from three quarters of
-- their idle period on when another idle queue is due, so that they tick
-- together and the look for them comes seldom (_idle_queues).  At most
-- half the lock budget of queues per call (about 400 with PostgreSQL's
-- default settings, see _lock_budget), counting every queue of a group
-- looked at, as each sequence read and each tick lock is held until the
-- transaction ends and the lock table is shared and bounded; the next
-- call takes the rest (queues with a recorded failure come first, then
-- the groups in turn).  Then publish the delayed events that came due
-- (13_delayed.sql; nearly free when none did).  They go in after the
-- ticks, so they move the event sequences past what the ticks recorded and
-- the next call ticks them.
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
    mover    record;
    marking  boolean;
    dirty    record;
    budget   int;
    turn     bigint;
    g        int;
    m        record;
    idle     record;
    failing  int[];
    ids      int[];           -- the queues to look at
    grp      int[];           -- the index in dirty of each one's group; NULL: none
    early    boolean[];       -- looked at for its idle tick
    g_ok     boolean[];       -- per dirty group: every queue looked at and settled
    l        record;
    r        record;
    qs       pgque.queue[] := '{}';  -- the queues locked to tick, with what was read under the lock
    lasts    pgque.tick[] := '{}';
    seqs     bigint[] := '{}';
    qgrp     int[] := '{}';
    qearly   boolean[] := '{}';
    redo     boolean[] := '{}';      -- tick in a subtransaction of its own
    settled  boolean[] := '{}';
    bad      int[] := '{}';          -- failed before ticking: recorded after
    states   text[] := '{}';
    msgs     text[] := '{}';
    n        int := 0;
    looked   int;             -- queues whose sequence this call reads: the lock cost
BEGIN
    PERFORM pgque._require_read_committed('ticker()');
    mover := pgque._mover_view(true);  -- before a tick gives this transaction its xid
    marking := pgque._hint_pass();
    dirty := pgque._dirty_groups();
    budget := greatest(16, (pgque._lock_budget() - 2 * dirty.total) / 2);
    -- Queues whose tick failed are tried again, due or not, so that their
    -- record clears once they tick; those gone since are not.
    failing := ARRAY(SELECT e.qe_queue FROM pgque.queue_error e JOIN pgque.queue q ON q.queue_id = e.qe_queue
                      WHERE e.qe_step = 'tick' ORDER BY 1);
    ids := failing;
    looked := cardinality(failing);
    grp := array_fill(NULL::int, ARRAY[cardinality(ids)]);
    early := array_fill(false, ARRAY[cardinality(ids)]);
    g_ok := array_fill(false, ARRAY[cardinality(dirty.ids)]);
    turn := coalesce(pg_sequence_last_value('pgque.tick_turn'), 0);
    FOR k IN 0 .. cardinality(dirty.ids) - 1 LOOP
        g := 1 + ((turn + k) % cardinality(dirty.ids))::int;
        m := pgque._group_members(dirty.ids[g]);
        IF looked > 0 AND looked + m.total > budget THEN
            PERFORM setval('pgque.tick_turn', turn + k);  -- the next call starts here
            EXIT;
        END IF;
        g_ok[g] := m.complete;
        looked := looked + m.total;
        FOR i IN 1 .. cardinality(m.members) LOOP
            IF m.members[i] = ANY (failing) THEN
                grp[array_position(ids, m.members[i])] := g;
            ELSE
                ids := ids || m.members[i];  grp := grp || g;  early := early || false;
            END IF;
        END LOOP;
    END LOOP;
    IF coalesce(pg_sequence_last_value('pgque.idle_due'), 0) <= pgque._epoch_us(now()) AND looked < budget THEN
        idle := pgque._idle_queues(budget - looked);
        PERFORM setval('pgque.idle_due', pgque._epoch_us(idle.next_due));
        FOR i IN 1 .. cardinality(idle.ids) LOOP
            IF idle.ids[i] = ANY (ids) THEN
                early[array_position(ids, idle.ids[i])] := true;
            ELSE
                ids := ids || idle.ids[i];  grp := grp || NULL::int;  early := early || true;
            END IF;
        END LOOP;
    END IF;
    -- Every queue is locked and its sequence read before this transaction
    -- gets its xid (its first tick gives it one): a producer whose event a
    -- sequence read counts got its xid before that, so every tick's
    -- snapshot sees it as running or finished (see _tick).  Read after the
    -- first tick, a later queue's count could include a producer that got
    -- its xid after ours, which no tick would wait for: its events would
    -- wait for the next idle tick.
    FOR i IN 1 .. cardinality(ids) LOOP
        BEGIN
            l := pgque._tick_lock(ids[i]);
            IF (l.q).queue_id IS NOT NULL THEN
                qs := qs || l.q;
                lasts := lasts || pgque._last_tick(ids[i]);
                seqs := seqs || l.seq_now;
                qgrp := qgrp || grp[i];
                qearly := qearly || early[i];
                redo := redo || (ids[i] = ANY (failing));
                settled := settled || false;
            ELSIF grp[i] IS NOT NULL THEN
                g_ok[grp[i]] := false;  -- ticked elsewhere or being dropped: look again
            END IF;
        EXCEPTION WHEN OTHERS THEN
            bad := bad || ids[i];  states := states || SQLSTATE;  msgs := msgs || SQLERRM;
            IF grp[i] IS NOT NULL THEN
                g_ok[grp[i]] := false;
            END IF;
        END;
    END LOOP;
    BEGIN
        FOR i IN 1 .. cardinality(qs) LOOP
            CONTINUE WHEN redo[i];
            r := pgque._tick_if_due(qs[i], lasts[i], seqs[i], qearly[i]);
            settled[i] := r.settled;
            IF r.id IS NOT NULL THEN
                n := n + 1;
            END IF;
        END LOOP;
    EXCEPTION WHEN OTHERS THEN
        -- The ticks of the block are rolled back with it: tick again, one
        -- subtransaction per queue.
        n := 0;
        redo := array_fill(true, ARRAY[cardinality(qs)]);
        settled := array_fill(false, ARRAY[cardinality(qs)]);
    END;
    FOR i IN 1 .. cardinality(qs) LOOP
        CONTINUE WHEN NOT redo[i];
        BEGIN
            r := pgque._tick_if_due(qs[i], lasts[i], seqs[i], qearly[i]);
            IF r.id IS NOT NULL THEN
                n := n + 1;
            END IF;
            PERFORM pgque._steps_ok('tick', ARRAY[qs[i].queue_id]);
            settled[i] := r.settled;
        EXCEPTION WHEN OTHERS THEN
            PERFORM pgque._step_failed(qs[i].queue_id, 'tick', SQLSTATE, SQLERRM);
        END;
    END LOOP;
    FOR i IN 1 .. cardinality(bad) LOOP
        PERFORM pgque._step_failed(bad[i], 'tick', states[i], msgs[i]);
    END LOOP;
    PERFORM pgque._delayed_tick(mover.cnt, mover.snap, mover.exact);
    IF marking THEN
        FOR i IN 1 .. cardinality(qs) LOOP
            IF qgrp[i] IS NOT NULL AND NOT settled[i] THEN
                g_ok[qgrp[i]] := false;
            END IF;
        END LOOP;
        IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
            -- Before any mark: a rollback of these ticks unmarks every group.
            PERFORM setval('pgque.tick_pass', pg_current_xact_id()::text::bigint);
        END IF;
        FOR i IN 1 .. cardinality(dirty.ids) LOOP
            IF g_ok[i] THEN
                PERFORM setval(dirty.seens[i], dirty.vals[i]);
            END IF;
        END LOOP;
    END IF;
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
    RETURN (pgque._tick(q, pgque._last_tick(q.queue_id), seq_now)).id;
END
$$;
