-- Maintenance: table rotation, tick cleanup, and maint(), the one entry
-- point for periodic work.
--
-- Rotation and why it is safe.  Events go to the table of the queue's
-- current generation k (table k % ntables).  Writers (_writable) first get
-- their xid and only then read the generation, from a sequence that no MVCC
-- snapshot can hide, so even a REPEATABLE READ producer that started before a
-- switch writes where the switch says.
--
-- Step 1 (switch to k+1): truncate the table of generation k+1 (it last held
-- generation k+1-ntables <= k-2, which nobody can need, see the guard), read
-- pre = xmax of a fresh snapshot, move the generation sequence, and clear post.
-- Step 2, in a LATER transaction that had no xid before it: post = its own
-- xid.  Xids are handed out in increasing order, so
--   * a writer of generation k (the old one) drew its xid before the sequence
--     moved, hence before step 2's xid: its xid < post;
--   * a writer of generation k+1 commits after the switch (it waits for the
--     TRUNCATE's lock), so a tick that sees it has xmax >= pre.
-- (A snapshot's xmax is the latest completed xid + 1, not the next xid to
-- hand out: running transactions may have larger xids.  That is why post
-- cannot be read from a snapshot in step 1 and needs step 2.)
-- A batch (last tick L, next tick N) holds only transactions with
-- xmin(L) <= xid < xmax(N), so it needs the older generation only while post
-- is unknown or xmin(L) < post, and the current one only if xmax(N) >= pre
-- (_batch_ctx).
--
-- Guard: step 1 runs only when post is known and every consumer's position
-- (and the queue's unclaimed position, while it has no consumer) has
-- xmin(L) >= post, i.e. every writer of the older generation has finished
-- and its events were consumed.  A consumer that stops pins rotation: see
-- get_consumer_info().blocking_rotation.

-- _queue_live(queue_id): true when the queue exists and no drop_queue() of
-- it is under way.  Takes a shared lock (tried, never waited for) that
-- drop_queue() takes exclusively before it drops anything and that is held
-- to the end of the transaction, so after true the queue's sequences and
-- event tables can be read without waiting for a drop or finding them gone.
-- The existence test goes by the catalog, which is current even under
-- REPEATABLE READ.
CREATE FUNCTION pgque._queue_live(queue_id int) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN pg_try_advisory_xact_lock_shared(pgque._lock_ns() + 4, queue_id)
       AND to_regclass(format('pgque.event_%s_seq', queue_id)) IS NOT NULL;
END
$$;

-- _step_failed(queue_id, step, sqlstate, message): record a failure of one
-- queue's periodic work (step 'tick', 'rotate', 'logs', 'retry', 'delayed',
-- 'delayed_store' or 'dedup'), overwriting the step's previous failure and
-- counting consecutive ones, and log it as a WARNING.
CREATE FUNCTION pgque._step_failed(queue_id int, step text, state text, message text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    name text := (SELECT q.queue_name FROM pgque.queue q WHERE q.queue_id = _step_failed.queue_id);
BEGIN
    RAISE WARNING 'pgque: % of queue % failed, other queues go on: % (SQLSTATE %)',
        step, pgque._quote(coalesce(name, '#' || queue_id)), message, state;
    INSERT INTO pgque.queue_error AS e (qe_queue, qe_step, qe_sqlstate, qe_message)
    VALUES (queue_id, step, state, left(message, 1000))
        ON CONFLICT (qe_queue, qe_step) DO UPDATE
       SET qe_sqlstate = excluded.qe_sqlstate, qe_message = excluded.qe_message, qe_at = now(),
           qe_count = e.qe_count + 1;
END
$$;

-- _steps_ok(step, queue_ids): forget the recorded failures of step for the
-- given queues (NULL: all), which just ran it without error.  Nearly free
-- when nothing failed.  Rows another session is updating right now are
-- left alone (SKIP LOCKED): that is a fresher failure, and nobody waits.
CREATE FUNCTION pgque._steps_ok(step text, queue_ids int[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM pgque.queue_error e WHERE e.qe_step = step) THEN
        DELETE FROM pgque.queue_error
         WHERE ctid = ANY (ARRAY(SELECT e.ctid FROM pgque.queue_error e
                                  WHERE e.qe_step = step AND (queue_ids IS NULL OR e.qe_queue = ANY (queue_ids))
                                    FOR UPDATE SKIP LOCKED));
    END IF;
END
$$;

-- _switch_row_due(q): the conditions of a due switch that q's row alone
-- answers: step 2 of the last switch done, rotation_period passed since it,
-- and no events kept for a first consumer (06_subscription.sql) from
-- before it.  Inlined where it
-- is called: a test of a few fields.
CREATE FUNCTION pgque._switch_row_due(q pgque.queue) RETURNS boolean
LANGUAGE sql STABLE AS $$
    -- IS NOT TRUE: a NULL unclaimed position holds nothing back, as in
    -- step 1's IF.
    SELECT q.queue_switch_post IS NOT NULL
       AND now() - q.queue_switch_time >= q.queue_rotation_period  -- a difference: no overflow
       AND (pg_snapshot_xmin(q.queue_unclaimed_snapshot) < q.queue_switch_post) IS NOT TRUE
$$;

-- _switch_held(q): whether a consumer of q is still at a position before
-- q's last switch (a worker's position matters only while it holds a
-- batch).
CREATE FUNCTION pgque._switch_held(q pgque.queue) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pgque.subscription
                    WHERE sub_queue = q.queue_id
                      AND pg_snapshot_xmin(sub_last_snapshot) < q.queue_switch_post
                      AND (sub_parent IS NULL OR sub_batch IS NOT NULL))
$$;

-- _switch_due(q): whether a switch of q is due and not held back by a
-- consumer, as read (the conditions maint_rotate_tables_step1 checks again
-- under the row lock).  Reads no sequence.
CREATE FUNCTION pgque._switch_due(q pgque.queue) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT pgque._switch_row_due(q) AND NOT pgque._switch_held(q)
$$;

-- _switch_wanted(q): whether step 1 has something to do for q as read: a
-- crashed switch to adopt, or a switch that is due (_switch_due).
CREATE FUNCTION pgque._switch_wanted(q pgque.queue) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    RETURN pgque._seq_value(q.queue_gen_seq) <> q.queue_gen OR pgque._switch_due(q);
END
$$;

-- _rotation_candidates(): the queues maint() runs step 1 for, by name: those
-- whose switch is due by their row (_switch_due, one query that reads no
-- sequence), and a 64th of all queues in turn (pgque.maint_turn), whose
-- generation sequence step 1 reads to find a crashed switch to adopt.
-- Readers cope with a crashed switch by themselves (_batch_ctx): adopting
-- it only lets rotation go on, so it may wait for the queue's turn (64
-- maint() calls), and maint()'s cost does not grow with idle queues by a
-- sequence read (and its lock) each.
CREATE FUNCTION pgque._rotation_candidates() RETURNS int[]
LANGUAGE plpgsql AS $$
DECLARE
    turn bigint := nextval('pgque.maint_turn') % 64;
BEGIN
    -- The row's conditions, inlined, come first: _switch_held costs tens
    -- of microseconds a queue.
    RETURN ARRAY(SELECT q.queue_id FROM pgque.queue q
                  WHERE q.queue_id % 64 = turn OR (pgque._switch_row_due(q) AND NOT pgque._switch_held(q))
                  ORDER BY q.queue_name);
END
$$;

-- _rotate_step1(queue_id): step 1 for one queue (maint_rotate_tables_step1).
-- The queue row is locked only when a switch looks wanted: a lock held to
-- the end of a maint() call that switched nothing made every concurrent
-- maint()'s step 2 skip the queue, so that with calls back to back from two
-- sessions rotation could stall.  A switch itself keeps the lock until it
-- commits, which is what makes step 2 wait for a later transaction.
CREATE FUNCTION pgque._rotate_step1(queue_id int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    q       pgque.queue;
    seq_gen bigint;
    tbl     text;
    pre     xid8;
BEGIN
    IF NOT pgque._queue_live(queue_id) THEN
        RETURN 0;
    END IF;
    SELECT * INTO q FROM pgque.queue x WHERE x.queue_id = _rotate_step1.queue_id;
    IF NOT FOUND OR NOT pgque._switch_wanted(q) THEN
        RETURN 0;
    END IF;
    SELECT * INTO q FROM pgque.queue x WHERE x.queue_id = _rotate_step1.queue_id FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    seq_gen := pgque._seq_value(q.queue_gen_seq);
    IF seq_gen <> q.queue_gen THEN
        -- A switch moved the sequence and then failed to commit (a crash):
        -- adopt the generation writers are using, with boundaries that make
        -- batches read it and its predecessor until step 2 has run.
        UPDATE pgque.queue
           SET queue_gen = seq_gen, queue_switch_pre = '0', queue_switch_post = NULL,
               queue_switch_time = now()
         WHERE pgque.queue.queue_id = q.queue_id;
        RETURN 1;
    END IF;
    IF NOT pgque._switch_due(q) THEN  -- again, under the row lock
        RETURN 0;
    END IF;
    tbl := pgque._event_table(q.queue_id, (q.queue_gen + 1) % q.queue_ntables);
    IF NOT pgque._lock_nowait(tbl) THEN
        RETURN 0;
    END IF;
    EXECUTE format('TRUNCATE %s', tbl);
    -- Writers of the new generation wait on the TRUNCATE's lock until we commit.
    pre := pg_snapshot_xmax(pg_current_snapshot());
    PERFORM setval(q.queue_gen_seq, q.queue_gen + 1, true);
    UPDATE pgque.queue
       SET queue_gen = q.queue_gen + 1, queue_switch_pre = pre, queue_switch_post = NULL,
           queue_switch_time = now()
     WHERE pgque.queue.queue_id = q.queue_id;
    RETURN 1;
END
$$;

-- maint_rotate_tables_step1(queue_name): switch the queue's event table when
-- its rotation_period has passed, step 2 of the previous switch is done and
-- every consumer has moved past it.  Skips quietly when the table to reuse is
-- locked by someone else (LOCK NOWAIT), another session holds the queue or
-- drop_queue() is dropping it.  Errors raise here (maint() records them
-- instead).  Must run at READ COMMITTED.  Returns 1 when switched, else 0.
-- Errors: PQ001, PQ009.
CREATE FUNCTION pgque.maint_rotate_tables_step1(queue_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
BEGIN
    PERFORM pgque._require_read_committed('maint()');
    RETURN pgque._rotate_step1(q.queue_id);
END
$$;

-- _queue_step(step, queue_id): run one queue's step of maint(): 'rotate'
-- (_rotate_step1) or 'retry' (_retry_move, 08_retry.sql).  Returns what the
-- step returns.
CREATE FUNCTION pgque._queue_step(step text, queue_id int) RETURNS int
LANGUAGE plpgsql AS $$
BEGIN
    CASE step
    WHEN 'rotate' THEN
        RETURN pgque._rotate_step1(queue_id);
    WHEN 'retry' THEN
        RETURN pgque._retry_move(queue_id);
    END CASE;
END
$$;

-- _each_queue(step, ids): run step (_queue_step) for the queues ids, in
-- order, isolated like ticker(): all in one subtransaction, and only when
-- that fails each in its own, recording the failing ones (_step_failed)
-- and forgetting the recorded failures of the others.  Returns the sum of
-- what the step returned for the queues that did not fail.
CREATE FUNCTION pgque._each_queue(step text, ids int[]) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    id int;
    n  int := 0;
BEGIN
    BEGIN
        FOREACH id IN ARRAY ids LOOP
            n := n + pgque._queue_step(step, id);
        END LOOP;
        PERFORM pgque._steps_ok(step, ids);
    EXCEPTION WHEN OTHERS THEN
        n := 0;
        FOREACH id IN ARRAY ids LOOP
            BEGIN
                n := n + pgque._queue_step(step, id);
                PERFORM pgque._steps_ok(step, ARRAY[id]);
            EXCEPTION WHEN OTHERS THEN
                PERFORM pgque._step_failed(id, step, SQLSTATE, SQLERRM);
            END;
        END LOOP;
    END;
    RETURN n;
END
$$;

-- maint_rotate_tables_step2(): finish the switches whose step 1 committed
-- earlier, by recording this transaction's xid.  Does nothing (returns 0)
-- when this transaction already has an xid, since it might predate a switch;
-- maint() calls it first for that reason.
-- Returns the number of queues finished.
CREATE FUNCTION pgque.maint_rotate_tables_step2() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    n int;
BEGIN
    IF pg_current_xact_id_if_assigned() IS NOT NULL THEN
        RETURN 0;
    END IF;
    -- SKIP LOCKED leaves alone a step 1 that has not committed yet: our xid
    -- must be drawn after its sequence moved.
    UPDATE pgque.queue SET queue_switch_post = pg_current_xact_id()
     WHERE queue_id IN (SELECT queue_id FROM pgque.queue WHERE queue_switch_post IS NULL
                         FOR NO KEY UPDATE SKIP LOCKED);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- maint_rotate_logs(period): recycle the oldest partition of the two
-- insert-only logs, ticks and consumer states, once the current one is period
-- old: lock both (NOWAIT; skip quietly while anyone holds one), note every
-- queue's newest tick and every consumer's newest state, TRUNCATE, put those
-- rows back and make the partition current.  The newest rows are thereby
-- always in the current or the previous partition, and neither log leaves
-- dead rows.  One queue never stops the others here either: when the rows
-- of some queue cannot be put back (a trigger refuses them, say), the switch
-- is not made (nothing is truncated, both logs grow until it is), each such
-- queue is recorded (step 'logs', get_queue_info().errors) and logged as a
-- WARNING, and maint() goes on with its other steps; a failure that is no
-- queue's raises (19_put_back.sql).  Returns 1 when it switched, else 0.
-- Errors: PQ006 (period NULL, not more than 0, or more than 100 years).
CREATE FUNCTION pgque.maint_rotate_logs(period interval DEFAULT '1 minute') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    gen    bigint := pgque._seq_value('pgque.log_gen');
    nxt    int := ((gen + 1) % 3)::int;
    tables text := format('pgque.tick_%s, pgque.sub_state_%s', nxt, nxt);
    ticks  pgque.tick[];
    states pgque.sub_state[];
BEGIN
    IF NOT pgque._rotation_due('log', period) THEN
        RETURN 0;
    END IF;
    IF NOT pgque._lock_nowait(tables) THEN
        RETURN 0;
    END IF;
    -- Read after the lock: a writer that still goes to the locked partition
    -- waits for us and lands in it after the TRUNCATE.
    ticks := ARRAY(SELECT t FROM (SELECT DISTINCT ON (tick_queue) * FROM pgque.tick
                                   ORDER BY tick_queue, tick_id DESC) t);
    states := ARRAY(SELECT x FROM (SELECT DISTINCT ON (ss_sub) * FROM pgque.sub_state
                                    WHERE ss_sub IN (SELECT sub_id FROM pgque.consumer)
                                    ORDER BY ss_sub, ss_seq DESC) x);
    IF NOT pgque._recycle('logs', tables, nxt, ticks => ticks, states => states) THEN
        RETURN 0;
    END IF;
    PERFORM pgque._rotation_end('log', gen);
    RETURN 1;
END
$$;

-- _forget_stale_errors(): delete the failure records that no later run of
-- their step would delete: of queues that are gone (no foreign key,
-- 00_schema.sql), and of a retry or delayed move whose events are gone
-- (unsubscribed, cancelled), so that the step never runs for the queue again.
CREATE FUNCTION pgque._forget_stale_errors() RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pgque.queue_error) THEN
        RETURN;
    END IF;
    DELETE FROM pgque.queue_error
     WHERE ctid = ANY (ARRAY(
        SELECT e.ctid FROM pgque.queue_error e
         WHERE NOT EXISTS (SELECT 1 FROM pgque.queue q WHERE q.queue_id = e.qe_queue)
            OR (e.qe_step = 'retry'
                AND NOT EXISTS (SELECT 1 FROM pgque.retry_queue r WHERE r.rq_queue = e.qe_queue AND r.rq_due <= now()))
            OR (e.qe_step = 'delayed'
                AND NOT EXISTS (SELECT 1 FROM pgque.delayed d
                                 WHERE d.dq_queue = e.qe_queue AND d.dq_due <= now()
                                   AND NOT EXISTS (SELECT 1 FROM pgque.delayed_done x
                                                    WHERE x.dd_queue = d.dq_queue AND x.ev_id = d.ev_id
                                                      AND x.dd_part = d.dq_part)))
           FOR UPDATE OF e SKIP LOCKED));
END
$$;

-- maint(): all periodic work, in order: step 2 of earlier table switches,
-- then step 1 for the queues that may want it (_rotation_candidates), the tick and consumer-state logs, the retry
-- mover, the delayed and dedup stores (rotation, which expires keys), the
-- delayed mover, and forgetting workers idle for an hour.  Also deletes the
-- access grants of dropped roles; first it makes again the unlogged
-- sequences a promotion left unreadable (22_unlogged.sql).  Safe to call
-- often and from several sessions at once: the calls take turns.  The per-queue steps (table switches, the retry and
-- delayed movers, putting rows back when the logs and stores are recycled)
-- are isolated like ticker()'s ticks: a failing queue is recorded
-- (get_queue_info().errors, last_error_*) and logged as a WARNING, and the
-- other queues go on; a failure that is no queue's raises.  Must run at
-- READ COMMITTED, in a transaction of its own (not the ticker's, and not
-- one that already wrote something).
-- Returns the number of things done (switches of event tables and logs,
-- retries and delayed events moved, workers and grants forgotten).
-- Errors: PQ009.
CREATE FUNCTION pgque.maint() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    n int := 0;
BEGIN
    PERFORM pgque._require_read_committed('maint()');
    -- One maint() at a time: each step locks its store's partitions as it
    -- goes and keeps them until the end, so that two calls in different
    -- steps could wait for each other (a deadlock, 40P01).  A second call
    -- waits for the first, then does what is left.
    PERFORM pg_advisory_xact_lock(pgque._lock_ns() + 22, 0);
    IF NOT pgque._unlogged_sequences_ok() THEN
        n := pgque._remake_unlogged_sequences();  -- after a promotion, 22_unlogged.sql
    END IF;
    n := n + pgque.maint_rotate_tables_step2();
    n := n + pgque._each_queue('rotate', pgque._rotation_candidates());
    PERFORM pgque._forget_stale_errors();
    n := n + pgque._run_schedules(now());  -- periodic events, 15_schedule.sql
    n := n + pgque._forget_dropped_roles();  -- grants of dropped roles, 17_namespace.sql
    n := n + pgque._forget_cancelled();  -- cancellations of reclaimed messages, 21_jobs.sql
    RETURN n + pgque.maint_rotate_logs() + pgque.maint_retry_events()
             + pgque.maint_rotate_delayed() + pgque.maint_rotate_dedup() + pgque.maint_delayed_events()
             + pgque._forget_idle_workers(interval '1 hour');
END
$$;
