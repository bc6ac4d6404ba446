-- Delayed delivery: send_at() and send_opts(deliver_at => ...) park an event
-- in the delayed store; the mover publishes it into the queue's current event
-- table once it is due, as the same event id; cancel_scheduled() withdraws it.
--
-- Like the event tables, the store is insert-only and reclaimed by TRUNCATE,
-- so it leaves no dead rows even while a long transaction holds the xmin
-- horizon:
--   * pgque.delayed        the parked events;
--   * pgque.delayed_done   one row per event that was published (moved) or
--                          cancelled; its primary key lets exactly one of
--                          the mover and cancel_scheduled() win;
--   * pgque.delayed_pos    the mover's position (newest row wins).
-- Each is split in three partitions by generation (sequence
-- pgque.delayed_gen); maint_rotate_delayed() recycles the oldest one with
-- TRUNCATE and copies back what must survive.  A row never changes
-- partition, so an event and its done row always share dq_part/dd_part.
--
-- The mover's position is (W, S): every committed event due at or before W
-- and visible in snapshot S has been dealt with.  A run at time now with a
-- fresh snapshot therefore only looks at
--   (a) events due in (W, now], found by the dq_due index, and
--   (b) events due at or before W whose transaction S did not see (they
--       committed late, after their due time), found by the dq_txid index;
-- it publishes them and records (now, its snapshot).  The cost of a run is
-- the number of events that became due or committed since the last one, not
-- the size of the store.
--
-- Idle runs must cost next to nothing because ticker() runs the mover every
-- few milliseconds.  Two sequences (not subject to MVCC, written without
-- row versions) hold a hint: pgque.delayed_idle is the value of
-- pgque.delayed_count (one nextval per parked event) when the last run
-- finished with no transaction left that might still commit a parked event,
-- and pgque.delayed_wake the earliest due time it saw, in epoch
-- microseconds.  While the count has not moved and the wake time has not
-- come, there is nothing to do, and ticker() learns that from three sequence
-- reads.  Transactions that might still commit parked events are tracked
-- like the ticker tracks producers (tick_pending): every parked event is
-- counted after its transaction got its xid, so an event counted when the
-- mover read the count is visible in its snapshot or belongs to a
-- transaction running then.
--
-- Advisory locks (two-int form, see 01_util.sql): (_lock_ns() + 20, 0) one
-- mover at a time; (_lock_ns() + 21, 0) one rotation of the delayed or
-- dedup store at a time.

CREATE TABLE pgque.delayed (
    dq_part        int         NOT NULL,  -- partition: delayed generation % 3
    dq_queue       int         NOT NULL,
    ev_id          bigint      NOT NULL,  -- drawn from the queue's event sequence at send time
    dq_due         timestamptz NOT NULL,
    dq_txid        xid8        NOT NULL DEFAULT pg_current_xact_id(),
    dq_key         text,                  -- the unique key it was sent with (14_dedup.sql)
    ev_time        timestamptz NOT NULL DEFAULT now(),
    ev_type        text,
    ev_data        text,
    ev_extra1      text,
    ev_extra2      text,
    ev_extra3      text,
    ev_extra4      text,
    ev_max_retries int
) PARTITION BY LIST (dq_part);
CREATE TABLE pgque.delayed_0 PARTITION OF pgque.delayed FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.delayed_1 PARTITION OF pgque.delayed FOR VALUES IN (1) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.delayed_2 PARTITION OF pgque.delayed FOR VALUES IN (2) WITH (autovacuum_enabled = false);
CREATE INDEX ON pgque.delayed (dq_due);
CREATE INDEX ON pgque.delayed (dq_txid);
CREATE INDEX ON pgque.delayed (dq_queue, ev_id);

CREATE TABLE pgque.delayed_done (
    dd_part  int         NOT NULL,
    dd_queue int         NOT NULL,
    ev_id    bigint      NOT NULL,
    dd_moved boolean     NOT NULL,   -- true: published by the mover; false: cancelled
    dd_time  timestamptz NOT NULL DEFAULT now(),
    dd_txid  xid8        NOT NULL DEFAULT pg_current_xact_id(),  -- for a move: what consumers see
    PRIMARY KEY (dd_queue, ev_id, dd_part)
) PARTITION BY LIST (dd_part);
CREATE TABLE pgque.delayed_done_0 PARTITION OF pgque.delayed_done FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.delayed_done_1 PARTITION OF pgque.delayed_done FOR VALUES IN (1) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.delayed_done_2 PARTITION OF pgque.delayed_done FOR VALUES IN (2) WITH (autovacuum_enabled = false);

CREATE TABLE pgque.delayed_pos (
    dp_part     int         NOT NULL,
    dp_seq      bigint      NOT NULL,   -- newest wins
    dp_due      timestamptz NOT NULL,   -- W
    dp_snapshot pg_snapshot NOT NULL,   -- S
    dp_count    bigint      NOT NULL,   -- pgque.delayed_count, read before S was taken
    dp_pending  xid8[],                 -- transactions that may still commit counted events
    dp_next_due timestamptz             -- earliest due of a parked event S saw; NULL: none
) PARTITION BY LIST (dp_part);
CREATE TABLE pgque.delayed_pos_0 PARTITION OF pgque.delayed_pos FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.delayed_pos_1 PARTITION OF pgque.delayed_pos FOR VALUES IN (1) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.delayed_pos_2 PARTITION OF pgque.delayed_pos FOR VALUES IN (2) WITH (autovacuum_enabled = false);
CREATE INDEX ON pgque.delayed_pos (dp_seq);

CREATE SEQUENCE pgque.delayed_pos_seq;
CREATE SEQUENCE pgque.delayed_gen MINVALUE 0 START 0;
CREATE SEQUENCE pgque.delayed_switched_at MINVALUE 0 START 0;  -- epoch ms of the last switch
CREATE SEQUENCE pgque.delayed_count;
CREATE SEQUENCE pgque.delayed_idle MINVALUE -1 START -1;
CREATE SEQUENCE pgque.delayed_wake MINVALUE 0 START 0;

DO $$
DECLARE
    t text;
BEGIN
    -- One call per statement: each updates the same pg_extension row.
    FOR t IN SELECT format('pgque.%s_%s', n, p) FROM unnest(ARRAY['delayed', 'delayed_done', 'delayed_pos']) n,
                    generate_series(0, 2) p LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
    END LOOP;
    FOREACH t IN ARRAY ARRAY['pgque.delayed_pos_seq', 'pgque.delayed_gen', 'pgque.delayed_switched_at',
                             'pgque.delayed_count', 'pgque.delayed_idle', 'pgque.delayed_wake'] LOOP
        PERFORM pg_catalog.pg_extension_config_dump(t, '');
    END LOOP;
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- plain SQL install: not an extension
END
$$;

-- _delayed_part(): the partition parked events (and done rows of events
-- parked now) go to.
CREATE FUNCTION pgque._delayed_part() RETURNS int
LANGUAGE sql AS $$ SELECT (pgque._seq_value('pgque.delayed_gen') % 3)::int $$;

-- _epoch_us(t): t in epoch microseconds (the wake hint's unit), clamped to
-- bigint: the latest timestamps PostgreSQL has (and infinity) are beyond
-- it, and a due time stored here must never make the mover fail.
CREATE FUNCTION pgque._epoch_us(t timestamptz) RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$
    SELECT floor(greatest(least(extract(epoch FROM t) * 1000000, 9223372036854775807), -9223372036854775808))::bigint
$$;

-- _delayed_idle(): true when the hint says no parked event can be due.
CREATE FUNCTION pgque._delayed_idle() RETURNS boolean
LANGUAGE sql AS $$
    SELECT pgque._seq_value('pgque.delayed_count') = coalesce(pg_sequence_last_value('pgque.delayed_idle'), -1)
       AND pgque._epoch_us(now()) < coalesce(pg_sequence_last_value('pgque.delayed_wake'), 0)
$$;

-- _park(queue_id, id, due, key, type, payload, extras, max_retries): put an
-- event in the delayed store.  The caller's xid is already assigned
-- (_writable), so counting after the insert keeps the mover's invariant.
CREATE FUNCTION pgque._park(queue_id int, id bigint, due timestamptz, key text, type text, payload text,
                            extra1 text, extra2 text, extra3 text, extra4 text, max_retries int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO pgque.delayed (dq_part, dq_queue, ev_id, dq_due, dq_key, ev_type, ev_data,
                               ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_max_retries)
    VALUES (pgque._delayed_part(), queue_id, id, due, key, type, payload,
            extra1, extra2, extra3, extra4, max_retries);
    PERFORM nextval('pgque.delayed_count');
END
$$;

-- _mover_view(use_hint): what a run of the mover starts from, read before
-- the run's transaction writes anything where it can be: cnt, the value of
-- pgque.delayed_count, and snap, a snapshot taken after it.  The mover's
-- bookkeeping needs an xid of its own that was assigned after cnt was read
-- (see _move_delayed); exact says that the transaction had none yet, so
-- the one it gets later is.  ticker() calls this before its ticks give its
-- transaction an xid.  Takes the mover lock (one mover at a time, a
-- try-lock: a busy mover means the work is being done); all NULL when
-- another session holds it, or when use_hint and the hint says idle.
CREATE FUNCTION pgque._mover_view(use_hint boolean, OUT cnt bigint, OUT snap pg_snapshot, OUT exact boolean)
LANGUAGE plpgsql AS $$
BEGIN
    IF (use_hint AND pgque._delayed_idle()) OR NOT pg_try_advisory_xact_lock(pgque._lock_ns() + 20, 0) THEN
        RETURN;
    END IF;
    exact := pg_current_xact_id_if_assigned() IS NULL;
    cnt := pgque._seq_value('pgque.delayed_count');
    snap := pg_current_snapshot();
END
$$;

-- _publish_delayed(queue_id, locked): publish the queue's events among
-- locked (parked events the mover holds), each once: the done row decides
-- (a cancel that committed after the mover's snapshot and before its lock
-- already has one, and the event is left alone).  The events of a dropped
-- queue are marked done and go nowhere.  NULL when drop_queue() is dropping
-- the queue right now: its events stay parked (should the drop roll back,
-- they go out later).  Returns how many events were published.
CREATE FUNCTION pgque._publish_delayed(queue_id int, locked pgque.delayed[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    moved pgque.delayed[];
    name  text;
    wr    record;
    n     int;
BEGIN
    IF NOT pg_try_advisory_xact_lock_shared(pgque._lock_ns() + 4, queue_id) THEN
        RETURN NULL;
    END IF;
    SELECT q.queue_name INTO name FROM pgque.queue q WHERE q.queue_id = _publish_delayed.queue_id;
    WITH done AS (
        INSERT INTO pgque.delayed_done (dd_part, dd_queue, ev_id, dd_moved)
        SELECT l.dq_part, l.dq_queue, l.ev_id, true FROM unnest(locked) l
         WHERE l.dq_queue = _publish_delayed.queue_id
        ON CONFLICT DO NOTHING
        RETURNING ev_id)
    SELECT array_agg(l) INTO moved FROM unnest(locked) l JOIN done USING (ev_id)
     WHERE l.dq_queue = _publish_delayed.queue_id;
    IF name IS NULL OR moved IS NULL THEN
        RETURN 0;
    END IF;
    wr := pgque._writable(name);
    INSERT INTO pgque.event (ev_slot, ev_id, ev_time, ev_type, ev_data,
                             ev_extra1, ev_extra2, ev_extra3, ev_extra4, ev_max_retries)
    SELECT wr.slot, m.ev_id, m.ev_time, m.ev_type, m.ev_data,
           m.ev_extra1, m.ev_extra2, m.ev_extra3, m.ev_extra4, m.ev_max_retries
      FROM unnest(moved) m ORDER BY m.ev_id;
    GET DIAGNOSTICS n = ROW_COUNT;
    PERFORM pgque._count_events(wr.event_seq, wr.hint, wr.seen, n);
    RETURN n;
END
$$;

-- _move_delayed(cnt, snap, exact): the mover (see the top of this file),
-- from a view of _mover_view(); nothing when cnt is NULL.  Publishes every
-- parked event that is due and not cancelled into its queue's current event
-- table, owned by nobody (every consumer gets it), with its original id.
-- Returns how many events were published.
CREATE FUNCTION pgque._move_delayed(cnt bigint, snap pg_snapshot, exact boolean) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    st      pgque.delayed_pos;
    own     xid8;
    pending xid8[];
    upto    timestamptz := now();
    w_from  timestamptz;
    cands   pgque.delayed[];
    locked  pgque.delayed[];
    moved   pgque.delayed[];
    skipped timestamptz;
    nd      timestamptz;
    qids    int[];
    qid     int;
    held    int[] := '{}';
    n       int;
    total   int := 0;
BEGIN
    IF cnt IS NULL THEN
        RETURN 0;
    END IF;
    -- Keeps maint_rotate_delayed() (TRUNCATE) out until we commit, and makes
    -- every snapshot taken from here on see the outcome of one that ran
    -- (snap is used only to tell which transactions it saw, never to read).
    LOCK TABLE pgque.delayed, pgque.delayed_done, pgque.delayed_pos IN ROW EXCLUSIVE MODE;
    SELECT * INTO st FROM pgque.delayed_pos ORDER BY dp_seq DESC LIMIT 1;
    IF st.dp_seq IS NOT NULL AND cnt = st.dp_count AND upto < coalesce(st.dp_next_due, 'infinity')
       AND NOT EXISTS (SELECT 1 FROM unnest(st.dp_pending) x WHERE pg_visible_in_snapshot(x, snap)) THEN
        RETURN 0;  -- nothing committed or came due since the last run
    END IF;
    own := pg_current_xact_id();
    IF st.dp_seq IS NULL OR cnt <> st.dp_count THEN
        -- Every transaction that counted a parked event got its xid before
        -- cnt was read; those snap does not see are in its xip, or (a snapshot
        -- lists only xids below its xmax) between its xmax and own, when own
        -- was assigned after cnt was read.  When it was not (not exact),
        -- newer ones may be missing: the position records count -1, so the
        -- next run starts over from a snapshot of its own, and the hint
        -- does not claim idleness.
        pending := ARRAY(SELECT pg_snapshot_xip(snap)
                         UNION ALL
                         SELECT x::text::xid8
                           FROM generate_series(pg_snapshot_xmax(snap)::text::bigint, own::text::bigint - 1) x);
    ELSE
        pending := ARRAY(SELECT x FROM unnest(st.dp_pending) x WHERE NOT pg_visible_in_snapshot(x, snap));
    END IF;
    w_from := coalesce(st.dp_due, '-infinity');

    -- Candidates, then the same rows locked.  A row locked by a concurrent
    -- cancel_scheduled() is skipped; W then stays below it so that, should
    -- the cancel roll back, the next run finds it again.
    cands := ARRAY(
        SELECT d FROM pgque.delayed d
         WHERE d.dq_due > w_from AND d.dq_due <= upto
        UNION ALL
        SELECT d FROM pgque.delayed d
         WHERE st.dp_seq IS NOT NULL AND d.dq_due <= w_from
           AND (d.dq_txid >= pg_snapshot_xmax(st.dp_snapshot)
                OR d.dq_txid = ANY (ARRAY(SELECT pg_snapshot_xip(st.dp_snapshot)))));
    cands := ARRAY(SELECT c FROM unnest(cands) c
                    WHERE NOT EXISTS (SELECT 1 FROM pgque.delayed_done x
                                       WHERE x.dd_queue = c.dq_queue AND x.ev_id = c.ev_id AND x.dd_part = c.dq_part));
    IF cardinality(cands) > 0 THEN
        locked := ARRAY(SELECT d FROM pgque.delayed d
                         WHERE (d.dq_queue, d.ev_id, d.dq_part) IN (SELECT c.dq_queue, c.ev_id, c.dq_part FROM unnest(cands) c)
                           FOR UPDATE OF d SKIP LOCKED);
        SELECT min(c.dq_due) INTO skipped FROM unnest(cands) c
         WHERE (c.dq_queue, c.ev_id) NOT IN (SELECT l.dq_queue, l.ev_id FROM unnest(locked) l);
        -- Each queue's events in one step (_publish_delayed), all queues in
        -- one subtransaction, and only when that fails each queue in its
        -- own: a failing queue is recorded (step 'delayed'), its events
        -- stay parked and hold the window below them like skipped ones, and
        -- the other queues' events go out.
        qids := ARRAY(SELECT DISTINCT l.dq_queue FROM unnest(locked) l ORDER BY 1);
        BEGIN
            FOREACH qid IN ARRAY qids LOOP
                n := pgque._publish_delayed(qid, locked);
                IF n IS NULL THEN
                    held := held || qid;
                ELSE
                    total := total + n;
                END IF;
            END LOOP;
            PERFORM pgque._steps_ok('delayed', qids);
        EXCEPTION WHEN OTHERS THEN
            total := 0;
            held := '{}';
            FOREACH qid IN ARRAY qids LOOP
                BEGIN
                    n := pgque._publish_delayed(qid, locked);
                    IF n IS NULL THEN
                        held := held || qid;
                    ELSE
                        total := total + n;
                    END IF;
                    PERFORM pgque._steps_ok('delayed', ARRAY[qid]);
                EXCEPTION WHEN OTHERS THEN
                    PERFORM pgque._step_failed(qid, 'delayed', SQLSTATE, SQLERRM);
                    held := held || qid;
                END;
            END LOOP;
        END;
        IF cardinality(held) > 0 THEN
            skipped := least(skipped, (SELECT min(l.dq_due) FROM unnest(locked) l WHERE l.dq_queue = ANY (held)));
        END IF;
    END IF;

    SELECT d.dq_due INTO nd FROM pgque.delayed d
     WHERE d.dq_due > upto
       AND NOT EXISTS (SELECT 1 FROM pgque.delayed_done x
                        WHERE x.dd_queue = d.dq_queue AND x.ev_id = d.ev_id AND x.dd_part = d.dq_part)
     ORDER BY d.dq_due LIMIT 1;
    IF skipped IS NOT NULL THEN
        nd := least(nd, skipped);
        upto := least(upto, skipped - interval '1 microsecond');
    END IF;
    INSERT INTO pgque.delayed_pos (dp_part, dp_seq, dp_due, dp_snapshot, dp_count, dp_pending, dp_next_due)
    VALUES (pgque._delayed_part(), nextval('pgque.delayed_pos_seq'), upto, snap,
            CASE WHEN exact OR cnt = st.dp_count THEN cnt ELSE -1 END, nullif(pending, '{}'), nd);
    -- The hint.  Sequences are not transactional: should this transaction
    -- fail to commit, the hint may claim idleness wrongly until the count
    -- moves or maint() runs the mover without it.
    PERFORM setval('pgque.delayed_idle',
                   CASE WHEN cardinality(pending) = 0 AND (exact OR cnt = st.dp_count) THEN cnt ELSE -1 END, true);
    PERFORM setval('pgque.delayed_wake', CASE WHEN nd IS NULL THEN 9223372036854775807
                                              ELSE greatest(pgque._epoch_us(nd), 0) END, true);
    RETURN total;
END
$$;

-- _delayed_tick(cnt, snap, exact): the mover as ticker() runs it after its
-- ticks, from the view it took before them (_mover_view(true): nothing but
-- the hint when nothing is due): a run whose failure is reported as a
-- WARNING instead of rolling back the ticks of every queue with it (maint()
-- runs the mover unguarded, so a lasting failure that is no single queue's
-- surfaces there as an error; one queue's failure is recorded and isolated
-- inside the mover, see _move_delayed).  Returns how many events were published.
CREATE FUNCTION pgque._delayed_tick(cnt bigint, snap pg_snapshot, exact boolean) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    IF cnt IS NULL THEN
        RETURN 0;
    END IF;
    BEGIN  -- a subtransaction, only when there is work
        RETURN pgque._move_delayed(cnt, snap, exact);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'pgque: the delayed mover failed, ticks go on: % (SQLSTATE %)', SQLERRM, SQLSTATE;
        RETURN 0;
    END;
END
$$;

-- maint_delayed_events(): publish every parked event that is due, ignoring
-- the idle hint.  maint() calls it; ticker() runs the same mover with the
-- hint after its ticks.  Must run at READ COMMITTED, in a transaction of its
-- own.  Returns how many events were published.  Errors: PQ009.
CREATE FUNCTION pgque.maint_delayed_events() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    v record;
BEGIN
    PERFORM pgque._require_read_committed('maint_delayed_events()');
    v := pgque._mover_view(false);
    RETURN pgque._move_delayed(v.cnt, v.snap, v.exact);
END
$$;

-- cancel_scheduled(queue_name, event_id): withdraw a parked event.  Takes
-- effect when the caller commits; a rolled-back cancel cancels nothing.  A
-- cancel racing the mover either wins (the event is never delivered) or
-- waits for it and returns 0 (it was delivered).
-- Returns 1 when cancelled, 0 when it was already delivered or cancelled.
-- Errors: PQ001 unknown queue, PQ006 NULL event_id, PQ009 not READ
-- COMMITTED, PQ010 the id is not a scheduled event of this queue (never
-- was, or was delivered or cancelled so long ago that the store forgot it:
-- it remembers done events for at least one rotation period of
-- maint_rotate_delayed, one minute under maint()).
CREATE FUNCTION pgque.cancel_scheduled(queue_name text, event_id bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q    pgque.queue := pgque._queue(queue_name);
    part int;
    n    int;
BEGIN
    PERFORM pgque._authorize(queue_name, 'send');
    IF event_id IS NULL THEN
        PERFORM pgque._invalid('event id', 'must not be NULL');
    END IF;
    -- A snapshot older than a rotation of the store would not see the rows
    -- it carried over; READ COMMITTED plus the lock rules that out.
    PERFORM pgque._require_read_committed('cancel_scheduled()');
    LOCK TABLE pgque.delayed, pgque.delayed_done IN ROW EXCLUSIVE MODE;
    SELECT dq_part INTO part FROM pgque.delayed
     WHERE dq_queue = q.queue_id AND ev_id = event_id FOR UPDATE;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgque: event % is not a scheduled event of queue %', event_id, quote_literal(queue_name)
            USING ERRCODE = 'PQ010';
    END IF;
    INSERT INTO pgque.delayed_done (dd_part, dd_queue, ev_id, dd_moved)
    VALUES (part, q.queue_id, event_id, false)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- _lock_wait(tables, timeout): like _lock_nowait, but waits up to timeout
-- for short holders (producers and the mover hold the store's tables only
-- for a moment, but at any instant one of them may).
CREATE FUNCTION pgque._lock_wait(tables text, timeout text) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    old text := current_setting('lock_timeout');
BEGIN
    PERFORM set_config('lock_timeout', timeout, true);
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE', tables);
    PERFORM set_config('lock_timeout', old, true);
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    PERFORM set_config('lock_timeout', old, true);
    RETURN false;
END
$$;

-- _store_rotation_begin(store, period, tables): the start of a rotation of
-- the delayed or dedup store: true when it is due (_rotation_due), no other
-- session is rotating either store, and tables (the partitions to recycle)
-- could be locked within 100 ms.  Raises PQ006 for a bad period.
CREATE FUNCTION pgque._store_rotation_begin(store text, period interval, tables text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN pgque._rotation_due(store, period)
       AND pg_try_advisory_xact_lock(pgque._lock_ns() + 21, 0)
       AND pgque._lock_wait(tables, '100ms');
END
$$;

-- maint_rotate_delayed(period): recycle the oldest partition of the delayed
-- store once the current one is period old.  Kept, by copying them back
-- after the TRUNCATE: events still parked, events done less than period ago
-- (so cancel_scheduled can answer 0 for them), events whose unique key still
-- refers to them while parked (14_dedup.sql), and the mover's newest
-- position.  Events of dropped queues are dropped.  Skips (0) when the
-- partition stays busy for 100 ms or another session is rotating.  When the
-- rows of some queue cannot be copied back (a trigger refuses them, say),
-- nothing is truncated: each such queue is recorded (step 'delayed_store',
-- get_queue_info().errors) and logged as a WARNING, and maint() goes on; a
-- failure that is no queue's raises (19_put_back.sql).
-- Returns 1 when it switched, else 0.  Errors: PQ006 (period NULL, not more
-- than 0, or more than 100 years).
CREATE FUNCTION pgque.maint_rotate_delayed(period interval DEFAULT '1 minute') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    gen    bigint := pgque._seq_value('pgque.delayed_gen');
    nxt    int := ((gen + 1) % 3)::int;
    tables text := format('pgque.delayed_%s, pgque.delayed_done_%s, pgque.delayed_pos_%s', nxt, nxt, nxt);
    keep   pgque.delayed[];
    dones  pgque.delayed_done[];
    pos    pgque.delayed_pos;
BEGIN
    IF NOT pgque._store_rotation_begin('delayed', period, tables) THEN
        RETURN 0;
    END IF;
    SELECT array_agg(d), array_agg(x) FILTER (WHERE x.ev_id IS NOT NULL) INTO keep, dones
      FROM pgque.delayed d
      LEFT JOIN pgque.delayed_done x ON x.dd_part = nxt AND x.dd_queue = d.dq_queue AND x.ev_id = d.ev_id
     WHERE d.dq_part = nxt
       AND d.dq_queue IN (SELECT queue_id FROM pgque.queue)
       AND (x.ev_id IS NULL
            OR x.dd_time > now() - period
            OR (d.dq_key IS NOT NULL
                AND EXISTS (SELECT 1 FROM pgque.dedup k
                             WHERE k.dk_queue = d.dq_queue AND k.dk_key = d.dq_key
                               AND k.ev_id = d.ev_id AND k.dk_txid IS NULL)));
    SELECT * INTO pos FROM pgque.delayed_pos ORDER BY dp_seq DESC LIMIT 1;
    IF NOT pgque._recycle('delayed_store', tables, nxt, events => keep, dones => dones, pos => pos) THEN
        RETURN 0;
    END IF;
    PERFORM pgque._rotation_end('delayed', gen);
    RETURN 1;
END
$$;

-- send_at(queue_name, type, payload, deliver_at [, extra1 .. extra4]):
-- enqueue one event for delivery at deliver_at.  The id is drawn now, from
-- the queue's event sequence, and is the msg_id consumers get.  Like send(),
-- it exists only if the caller commits.  A deliver_at not in the future
-- (now() is the transaction's start) sends at once, as send() does; one more
-- than 100 years ahead, or infinite, is refused.  Delivered to every
-- consumer at the first tick after deliver_at, never before.  Returns the
-- event id.  Errors: PQ001, PQ006 (NULL type or deliver_at, deliver_at out
-- of range).
CREATE FUNCTION pgque.send_at(queue_name text, type text, payload text, deliver_at timestamptz,
                              extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                              extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    IF deliver_at IS NULL THEN
        PERFORM pgque._invalid('deliver_at', 'must not be NULL');
    END IF;
    RETURN pgque.send_opts(queue_name, type, payload, deliver_at => deliver_at,
                           extra1 => extra1, extra2 => extra2, extra3 => extra3, extra4 => extra4);
END
$$;

CREATE FUNCTION pgque.send_at(queue_name text, type text, payload jsonb, deliver_at timestamptz,
                              extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                              extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send_at(queue_name, type, payload::pg_catalog.text, deliver_at, extra1, extra2, extra3, extra4)
$$;
