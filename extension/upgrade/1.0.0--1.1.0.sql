-- Upgrade of pgque 1.0.0 to 1.1.0 (source of extension/pgque--1.0.0--1.1.0.sql;
-- make appends version(), engine_id() and the function comments).
--
-- _batch_ctx: the cancellation probe for stragglers is an index probe per
-- cx_sub value instead of one OR over both, which scanned every
-- cancellation of every queue.
CREATE OR REPLACE FUNCTION pgque._batch_ctx(s pgque.subscription, from_start boolean DEFAULT false)
RETURNS pgque._batch_ctx
LANGUAGE plpgsql AS $$
DECLARE
    q       pgque.queue;
    ctx     pgque._batch_ctx;
    seq_gen bigint;
    gens    bigint[];
BEGIN
    SELECT * INTO q FROM pgque.queue WHERE queue_id = s.sub_queue;
    ctx.lo := pg_snapshot_xmax(s.sub_last_snapshot);
    ctx.hi := pg_snapshot_xmax(s.sub_next_snapshot);
    ctx.snap := s.sub_next_snapshot;
    ctx.stragglers := ARRAY(SELECT x FROM pg_snapshot_xip(s.sub_last_snapshot) x
                             WHERE pg_visible_in_snapshot(x, s.sub_next_snapshot));
    seq_gen := pgque._seq_value(q.queue_gen_seq);
    IF seq_gen <> q.queue_gen THEN
        -- A switch was interrupted after moving the sequence (10_maint.sql
        -- repairs it): writers may be on either generation, read them all.
        gens := ARRAY(SELECT generate_series(greatest(least(q.queue_gen, seq_gen) - 1, 0), greatest(q.queue_gen, seq_gen)));
    ELSE
        IF q.queue_gen > 0 AND (q.queue_switch_post IS NULL
                                OR pg_snapshot_xmin(s.sub_last_snapshot) < q.queue_switch_post) THEN
            gens := gens || (q.queue_gen - 1);
        END IF;
        IF ctx.hi >= q.queue_switch_pre THEN
            gens := gens || q.queue_gen;
        END IF;
    END IF;
    ctx.tables := ARRAY(SELECT DISTINCT pgque._event_table(q.queue_id, g % q.queue_ntables) FROM unnest(gens) g);
    ctx.sub_id := coalesce(s.sub_parent, s.sub_id);  -- a worker sees its consumer's retries
    IF from_start OR s.sub_ack_txid IS NULL THEN
        ctx.after_txid := coalesce(s.sub_start_txid, '0');  ctx.after_id := coalesce(s.sub_start_id, 0);
    ELSE
        ctx.after_txid := s.sub_ack_txid;                   ctx.after_id := s.sub_ack_id;
    END IF;
    IF s.sub_end_txid IS NOT NULL THEN
        ctx.end_txid := s.sub_end_txid;  ctx.end_id := s.sub_end_id;
        ctx.hi := least(ctx.hi, (s.sub_end_txid::text::numeric + 1)::text::xid8);
    END IF;
    IF ctx.after_txid >= ctx.lo THEN
        ctx.range_txid := ctx.after_txid;  ctx.range_id := ctx.after_id;
    ELSE
        ctx.range_txid := ctx.lo;          ctx.range_id := 0;  -- ids start at 1
    END IF;
    -- The batch queries skip cancelled ids only when a cancelled row of
    -- this consumer may be in the batch: its txid in [lo, hi) or a
    -- straggler's (21_jobs.sql).  Probes of (cx_queue, cx_sub, cx_txid),
    -- so cancellations of other batches or consumers cost nothing; one
    -- probe per cx_sub value, because "cx_sub = s OR cx_sub IS NULL" is not
    -- an index condition and made the straggler probe a scan of every
    -- cancellation of every queue.
    IF EXISTS (SELECT 1 FROM pgque.cancelled x WHERE x.cx_queue = q.queue_id AND x.cx_sub = ctx.sub_id
                                                 AND x.cx_txid >= ctx.lo AND x.cx_txid < ctx.hi)
       OR EXISTS (SELECT 1 FROM pgque.cancelled x WHERE x.cx_queue = q.queue_id AND x.cx_sub IS NULL
                                                    AND x.cx_txid >= ctx.lo AND x.cx_txid < ctx.hi)
       OR (cardinality(ctx.stragglers) > 0
           AND (EXISTS (SELECT 1 FROM pgque.cancelled x WHERE x.cx_queue = q.queue_id AND x.cx_sub = ctx.sub_id
                                                          AND x.cx_txid = ANY (ctx.stragglers))
                OR EXISTS (SELECT 1 FROM pgque.cancelled x WHERE x.cx_queue = q.queue_id AND x.cx_sub IS NULL
                                                             AND x.cx_txid = ANY (ctx.stragglers)))) THEN
        ctx.cancels := q.queue_id;
    END IF;
    RETURN ctx;
END
$$;

-- Unlogged sequences a promotion left unreadable are made again by maint()
-- (22_unlogged.sql).
-- _unlogged_sequences_ok(): whether every unlogged sequence of pgque can
-- be read: one look at each, in one subtransaction.
CREATE FUNCTION pgque._unlogged_sequences_ok() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sequence_last_value(c.oid)
       FROM pg_class c
      WHERE c.relnamespace = 'pgque'::regnamespace AND c.relkind = 'S' AND c.relpersistence = 'u';
    RETURN true;
EXCEPTION WHEN internal_error OR data_corrupted THEN
    RETURN false;
END
$$;

-- _remake_unlogged_sequences(): make each unreadable unlogged sequence of
-- pgque again, under its name and with its bounds, in its start state,
-- and point the queues and groups that named it at the new one.  Members
-- of the extension stay members.  Logs a WARNING naming each.  Returns
-- how many it made.
CREATE FUNCTION pgque._remake_unlogged_sequences() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    s      record;
    fresh  regclass;
    member boolean;
    n      int := 0;
BEGIN
    FOR s IN SELECT c.oid::regclass AS seq, c.relname, q.seqmin, q.seqmax, q.seqstart, q.seqincrement
               FROM pg_class c JOIN pg_sequence q ON q.seqrelid = c.oid
              WHERE c.relnamespace = 'pgque'::regnamespace AND c.relkind = 'S' AND c.relpersistence = 'u'
              ORDER BY c.relname
    LOOP
        BEGIN
            PERFORM pg_sequence_last_value(s.seq);
            CONTINUE;
        EXCEPTION WHEN internal_error OR data_corrupted THEN
            NULL;  -- unreadable: made again below
        END;
        member := EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seq
                             AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e');
        IF member THEN
            EXECUTE format('ALTER EXTENSION pgque DROP SEQUENCE %s', s.seq);
        END IF;
        EXECUTE format('DROP SEQUENCE %s', s.seq);
        EXECUTE format('CREATE UNLOGGED SEQUENCE pgque.%I INCREMENT %s MINVALUE %s MAXVALUE %s START %s',
                       s.relname, s.seqincrement, s.seqmin, s.seqmax, s.seqstart);
        fresh := format('pgque.%I', s.relname)::regclass;
        EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', fresh);
        IF member THEN
            EXECUTE format('ALTER EXTENSION pgque ADD SEQUENCE %s', fresh);
        END IF;
        UPDATE pgque.event_group SET g_hint = fresh WHERE g_hint = s.seq;
        UPDATE pgque.event_group SET g_seen = fresh WHERE g_seen = s.seq;
        UPDATE pgque.queue SET queue_hint_seq = fresh WHERE queue_hint_seq = s.seq;
        UPDATE pgque.queue SET queue_seen_seq = fresh WHERE queue_seen_seq = s.seq;
        RAISE WARNING 'pgque: sequence pgque.% could not be read (a promotion of a standby that had not written it yet): made again', s.relname;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;

-- Like every function of pgque's (99_security.sql): not for PUBLIC.
REVOKE ALL ON FUNCTION pgque._unlogged_sequences_ok(), pgque._remake_unlogged_sequences() FROM PUBLIC;

CREATE OR REPLACE FUNCTION pgque.maint() RETURNS int
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
