-- Maintenance: table rotation, tick cleanup, and maint(), the one entry
-- point for periodic work.
--
-- Rotation and why it is safe.  Events go to the table of the queue's
-- current generation k (table k % ntables).  A switch truncates the table of
-- generation k+1 (it last held generation k+1-ntables <= k-2, which nobody
-- can need any more, see the guard below) and moves the generation sequence
-- to k+1.  Writers (_writable) first get their xid and only then read the
-- generation from the sequence; the switch reads the next-xid value just
-- before (pre) and just after (post) moving the sequence.  Hence:
--   * a writer of generation k-1 read the sequence before the switch, and got
--     its xid before that, so its xid < post;
--   * a writer of generation k commits after the switch, so any tick that sees
--     it has xmax >= pre.
-- A batch (last tick L, next tick N) holds only transactions with
-- xmin(L) <= xid < xmax(N), so it needs generation k-1 only if xmin(L) < post
-- and generation k only if xmax(N) >= pre (_batch_ctx).
--
-- Guard: switch again only when every consumer's position has
-- xmin(L) >= post, i.e. every writer of generation k-1 has finished and its
-- events were consumed; then generation k-1 is dead, and so is the table the
-- next switch will truncate.  A consumer that stops pins rotation: see
-- get_consumer_info().blocking_rotation.
--
-- Unlike PgQ, nothing depends on the writers' MVCC snapshot (a REPEATABLE
-- READ producer that started before a switch writes to the right table), and
-- no second transaction is needed to record that the switch became visible:
-- the sequence is visible to every session the moment it moves.

-- maint_rotate_tables(queue_name): switch the queue's event table when its
-- rotation_period has passed and every consumer has moved past the previous
-- switch.  Skips quietly when the table to reuse is locked by someone else
-- (LOCK NOWAIT) or another maint() holds the queue.
-- Must run at READ COMMITTED.  Returns 1 when switched, else 0.  Errors: PQ001, PQ009.
CREATE FUNCTION pgque.maint_rotate_tables(queue_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q       pgque.queue := pgque._queue(queue_name);
    seq_gen bigint;
    tbl     text;
    pre     xid8;
    post    xid8;
BEGIN
    PERFORM pgque._require_read_committed('maint()');
    SELECT * INTO q FROM pgque.queue WHERE queue_id = q.queue_id FOR NO KEY UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
        RETURN 0;
    END IF;
    seq_gen := pgque._seq_value(q.queue_gen_seq);
    IF seq_gen <> q.queue_gen THEN
        -- A switch moved the sequence and then failed to commit (a crash):
        -- adopt the generation writers are using, with boundaries that make
        -- batches read it and its predecessor for as long as needed.
        UPDATE pgque.queue
           SET queue_gen = seq_gen, queue_switch_pre = '0', queue_switch_time = now(),
               queue_switch_post = pg_snapshot_xmax(pg_current_snapshot())
         WHERE queue_id = q.queue_id;
        RETURN 1;
    END IF;
    IF now() < q.queue_switch_time + q.queue_rotation_period
       OR EXISTS (SELECT 1 FROM pgque.subscription
                   WHERE sub_queue = q.queue_id
                     AND pg_snapshot_xmin(sub_last_snapshot) < q.queue_switch_post) THEN
        RETURN 0;
    END IF;
    tbl := pgque._event_table(q.queue_id, (q.queue_gen + 1) % q.queue_ntables);
    BEGIN
        EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', tbl);
    EXCEPTION WHEN lock_not_available THEN
        RETURN 0;
    END;
    EXECUTE format('TRUNCATE %s', tbl);
    -- Writers of the new generation wait on the TRUNCATE's lock until we commit.
    pre := pg_snapshot_xmax(pg_current_snapshot());
    PERFORM setval(q.queue_gen_seq, q.queue_gen + 1, true);
    post := pg_snapshot_xmax(pg_current_snapshot());
    UPDATE pgque.queue
       SET queue_gen = q.queue_gen + 1, queue_switch_pre = pre, queue_switch_post = post,
           queue_switch_time = now()
     WHERE queue_id = q.queue_id;
    RETURN 1;
END
$$;

-- maint_tick_cleanup(queue_name): delete ticks older than a minute, keeping
-- the newest.  Subscriptions keep copies of the ticks they need, so no batch
-- depends on these rows.  Returns how many were deleted.  Errors: PQ001.
CREATE FUNCTION pgque.maint_tick_cleanup(queue_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue := pgque._queue(queue_name);
    n int;
BEGIN
    DELETE FROM pgque.tick
     WHERE tick_queue = q.queue_id
       AND tick_time < now() - interval '1 minute'
       AND tick_id < (SELECT max(tick_id) FROM pgque.tick WHERE tick_queue = q.queue_id);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- maint(): all periodic work, in order: for each queue rotation and tick
-- cleanup, then the retry mover.  Safe to call often and from several
-- sessions at once.  Must run at READ COMMITTED, in a transaction other than
-- the ticker's.
-- Returns the number of things done (switches, ticks deleted, retries moved).
-- Errors: PQ009.
CREATE FUNCTION pgque.maint() RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    name text;
    n    int := 0;
BEGIN
    PERFORM pgque._require_read_committed('maint()');
    FOR name IN SELECT queue_name FROM pgque.queue ORDER BY queue_name LOOP
        n := n + pgque.maint_rotate_tables(name) + pgque.maint_tick_cleanup(name);
    END LOOP;
    RETURN n + pgque.maint_retry_events();
END
$$;
