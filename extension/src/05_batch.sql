-- Batches.  A consumer's batch spans (last finished tick, next tick): the
-- events whose transactions are visible in the next tick's snapshot and not in
-- the last one's.  Opening a batch takes the newest tick, so a consumer that
-- is behind catches up in one batch; receive() hands a batch out in pieces of
-- any size, so a big batch costs nothing extra.  An open batch is returned
-- again until it is finished, which is how a crashed consumer gets redelivery.

-- _batch_ctx(s [, from_start]): where the open batch of subscription s
-- lives, and where reading it resumes: after the acknowledged position, or
-- at the start of the batch (for a worker's window cut from inside a tick
-- range, after sub_start_*; such a window also ends at sub_end_*).
--
-- Rows are found by two index scans per table on ev_txid:
--   * the range [xmax(last), xmax(next)) filtered by visibility in next;
--   * the explicit list of transactions that were still running at the last
--     tick and had finished by the next one (long transactions are never
--     lost, and never force a scan from an old xmin).
--
-- Which tables: the generation rules proven in 10_maint.sql.  With k the
-- current generation and pre/post the boundaries of the switch to it:
--   * generation k may hold rows only if xmax(next) >= pre;
--   * generation k-1 may hold rows only while post is unknown or xmin(last) < post.
CREATE FUNCTION pgque._batch_ctx(s pgque.subscription, from_start boolean DEFAULT false)
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

-- _batch_sql(ctx, cond, tail [, cols [, ref]]): the query over the rows of
-- a batch after its position, in delivery order (ev_txid, ev_id), selecting
-- cols.  Parameters: $1 the _batch_ctx (ref says how the query refers to
-- it: '($1::pgque._batch_ctx)' for a client that sends it as text), $2
-- limit, $3 and $4 free for cond and cols; tail orders and limits.
--
-- The range part starts at its own position because a btree scan starts at
-- the row comparison: (0, 0) would walk every older row of the table.  tail
-- is applied to every part as well as to the whole: each part is then an
-- ordered index scan on (ev_txid, ev_id) that stops after $2 rows, so
-- reading a piece of a huge batch costs the size of the piece.  Event tables
-- are never analyzed (autovacuum is off for them), so the planner cannot
-- know a batch's size: callers plan these queries with seqscan, bitmapscan,
-- sort and parallelism off, which leaves it that ordered walk.
--
-- The query may run in a client's session (receive_query), under its
-- search_path: its function, types and operators are schema-qualified.
--
-- PL/pgSQL rather than SQL, here and in _paused: a SQL function that cannot
-- be inlined is parsed and planned again in every transaction that calls it
-- (measured: 55 µs of each receive), a PL/pgSQL one keeps its plans.
CREATE FUNCTION pgque._batch_sql(ctx pgque._batch_ctx, cond text, tail text, cols text DEFAULT '*',
                                 ref text DEFAULT '($1)')
RETURNS text
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    t     text;
    parts text[];
BEGIN
    IF ctx.end_txid IS NOT NULL THEN  -- a window that ends inside its tick range
        cond := format(' AND (ev_txid, ev_id) OPERATOR(pg_catalog.<=) (%1$s.end_txid, %1$s.end_id)', ref) || cond;
    END IF;
    IF ctx.cancels IS NOT NULL THEN  -- cancelled messages are never handed out (21_jobs.sql)
        cond := cond || format(' AND NOT EXISTS (SELECT FROM pgque.cancelled x'
                            || ' WHERE x.cx_queue OPERATOR(pg_catalog.=) %1$s.cancels AND x.cx_id OPERATOR(pg_catalog.=) ev_id'
                            || ' AND (x.cx_sub IS NULL OR x.cx_sub OPERATOR(pg_catalog.=) %1$s.sub_id))', ref);
    END IF;
    FOREACH t IN ARRAY ctx.tables LOOP
        parts := parts || format(
               '(SELECT * FROM %1$s WHERE (ev_txid, ev_id) OPERATOR(pg_catalog.>) (%4$s.range_txid, %4$s.range_id)'
            || ' AND ev_txid OPERATOR(pg_catalog.<) %4$s.hi AND pg_catalog.pg_visible_in_snapshot(ev_txid, %4$s.snap)'
            || ' AND (ev_owner IS NULL OR ev_owner OPERATOR(pg_catalog.=) %4$s.sub_id) %2$s %3$s)', t, cond, tail, ref);
        IF cardinality(ctx.stragglers) > 0 THEN  -- often none: a smaller plan then
            parts := parts || format(
                   '(SELECT * FROM %1$s WHERE ev_txid OPERATOR(pg_catalog.=) ANY (%4$s.stragglers)'
                || ' AND (ev_txid, ev_id) OPERATOR(pg_catalog.>) (%4$s.after_txid, %4$s.after_id)'
                || ' AND (ev_owner IS NULL OR ev_owner OPERATOR(pg_catalog.=) %4$s.sub_id) %2$s %3$s)', t, cond, tail, ref);
        END IF;
    END LOOP;
    RETURN 'SELECT ' || cols || ' FROM (' || array_to_string(parts, ' UNION ALL ') || ') e ' || tail;
END
$$;

-- _batch_rows(s, from_start, cond, tail, lim, arg3, arg4): rows of s's
-- open batch, from its start or after its acknowledged position, in
-- delivery order (see _batch_sql for the rest).
CREATE FUNCTION pgque._batch_rows(s pgque.subscription, from_start boolean, cond text, tail text,
                                  lim bigint, arg3 bigint, arg4 xid8) RETURNS SETOF pgque.event
LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
                 SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
    ctx pgque._batch_ctx := pgque._batch_ctx(s, from_start);
BEGIN
    RETURN QUERY EXECUTE pgque._batch_sql(ctx, cond, tail) USING ctx, lim, arg3, arg4;
END
$$;

-- _save(s [, seen]): record s's position, open batch and progress as the
-- consumer's newest state (an INSERT: see pgque.sub_state), and, unless
-- seen is false (a batch taken from it by someone else), that it was active
-- now.  The consumer must be locked (_subscription, _batch_sub).  Each call
-- saves at most once.  A worker that has no row yet (sub_id NULL, see
-- _worker) gets it here, so a worker that is never handed anything leaves
-- nothing behind.
CREATE FUNCTION pgque._save(s pgque.subscription, seen boolean DEFAULT true) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    IF s.sub_id IS NULL THEN
        INSERT INTO pgque.consumer (sub_queue, sub_consumer, sub_parent)
        VALUES (s.sub_queue, s.sub_consumer, s.sub_parent)
        RETURNING sub_id INTO s.sub_id;
    END IF;
    IF seen THEN
        s.sub_active := now();
    END IF;
    INSERT INTO pgque.sub_state (ss_part, ss_sub, ss_seq,
        sub_last_tick, sub_last_time, sub_last_snapshot, sub_last_seq,
        sub_batch, sub_next_tick, sub_next_time, sub_next_snapshot, sub_next_seq,
        sub_ack_txid, sub_ack_id, sub_sent_txid, sub_sent_id, sub_done, sub_active, sub_lease_until,
        sub_piece, sub_start_txid, sub_start_id, sub_end_txid, sub_end_id, sub_lost_batch)
    VALUES (pgque._log_part(), s.sub_id, nextval('pgque.sub_state_seq'),
        s.sub_last_tick, s.sub_last_time, s.sub_last_snapshot, s.sub_last_seq,
        s.sub_batch, s.sub_next_tick, s.sub_next_time, s.sub_next_snapshot, s.sub_next_seq,
        s.sub_ack_txid, s.sub_ack_id, s.sub_sent_txid, s.sub_sent_id, s.sub_done, s.sub_active,
        s.sub_lease_until, s.sub_piece, s.sub_start_txid, s.sub_start_id, s.sub_end_txid, s.sub_end_id,
        s.sub_lost_batch);
    RETURN s;
END
$$;

-- _paused(queue_id): is the queue paused (pause_queue)?  Consumers are
-- handed nothing then.
CREATE FUNCTION pgque._paused(queue_id int) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN EXISTS (SELECT 1 FROM pgque.queue q WHERE q.queue_id = _paused.queue_id AND q.queue_paused_at IS NOT NULL);
END
$$;

-- _batch_window(s): s with a batch opened up to the newest tick, when there
-- is one past s's position and none is open; in memory only (see _save).
-- NULL while the queue is paused (pause_queue): no batch to hand out, open
-- or new, and nothing to save.
CREATE FUNCTION pgque._batch_window(s pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    t pgque.tick;
BEGIN
    IF pgque._paused(s.sub_queue) THEN
        RETURN NULL;
    END IF;
    IF s.sub_batch IS NOT NULL THEN
        RETURN s;  -- the open batch is returned again: no need to look at ticks
    END IF;
    t := pgque._last_tick(s.sub_queue);
    IF t.tick_id > s.sub_last_tick THEN
        s := pgque._range_to(pgque._clear_batch(s), t);
        s.sub_batch := nextval('pgque.batch_id_seq');
    END IF;
    RETURN s;
END
$$;

-- _range_to(s, t): s with its open range (sub_next_*) ending at tick t; in
-- memory only.
CREATE FUNCTION pgque._range_to(s pgque.subscription, t pgque.tick) RETURNS pgque.subscription
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    s.sub_next_tick := t.tick_id;            s.sub_next_time := t.tick_time;
    s.sub_next_snapshot := t.tick_snapshot;  s.sub_next_seq := t.tick_event_seq;
    RETURN s;
END
$$;

-- _past_range(s): s with its position (sub_last_*) moved to the end of its
-- open range; in memory only, the range kept.
CREATE FUNCTION pgque._past_range(s pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    s.sub_last_tick := s.sub_next_tick;            s.sub_last_time := s.sub_next_time;
    s.sub_last_snapshot := s.sub_next_snapshot;    s.sub_last_seq := s.sub_next_seq;
    RETURN s;
END
$$;

-- _clear_batch(s): s without an open batch or progress in one (its
-- position, and the batch it last lost, are kept); in memory only.
CREATE FUNCTION pgque._clear_batch(s pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    s.sub_batch := NULL;         s.sub_next_tick := NULL;  s.sub_next_time := NULL;
    s.sub_next_snapshot := NULL; s.sub_next_seq := NULL;
    s.sub_ack_txid := NULL;  s.sub_ack_id := NULL;
    s.sub_sent_txid := NULL; s.sub_sent_id := NULL;
    s.sub_done := false;
    s.sub_lease_until := NULL;   s.sub_piece := NULL;
    s.sub_start_txid := NULL;    s.sub_start_id := NULL;
    s.sub_end_txid := NULL;      s.sub_end_id := NULL;
    RETURN s;
END
$$;

-- _finish_batch(s [, seen]): move s's position to the end of its open
-- batch and save (seen: as _save).
CREATE FUNCTION pgque._finish_batch(s pgque.subscription, seen boolean DEFAULT true) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    RETURN pgque._save(pgque._clear_batch(pgque._past_range(s)), seen);
END
$$;

-- next_batch_info(queue_name, consumer_name): open the consumer's next batch
-- (or return the open one again).  All columns are NULL when no batch is
-- ready, and while the queue is paused.  Errors: PQ001, PQ003, PQ025
-- (cooperative workers hold batches of the consumer).
CREATE FUNCTION pgque.next_batch_info(queue_name text, consumer_name text,
    OUT batch_id bigint, OUT cur_tick_id bigint, OUT prev_tick_id bigint,
    OUT cur_tick_time timestamptz, OUT prev_tick_time timestamptz,
    OUT cur_tick_event_seq bigint, OUT prev_tick_event_seq bigint)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s0 pgque.subscription;
    s  pgque.subscription;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    s0 := pgque._subscription(queue_name, consumer_name, true);
    IF pgque._read_by_workers(s0) THEN
        RAISE EXCEPTION 'pgque: consumer % is being read by its cooperative workers', quote_literal(consumer_name)
            USING ERRCODE = 'PQ025',
                  HINT = 'Use receive(); next_batch() works again once no worker holds a batch.';
    END IF;
    s := pgque._batch_window(s0);
    IF s0.sub_batch IS NULL AND s.sub_batch IS NOT NULL THEN
        s := pgque._save(s);
    END IF;
    IF s.sub_batch IS NOT NULL THEN
        batch_id := s.sub_batch;
        cur_tick_id := s.sub_next_tick;         prev_tick_id := s.sub_last_tick;
        cur_tick_time := s.sub_next_time;       prev_tick_time := s.sub_last_time;
        cur_tick_event_seq := s.sub_next_seq;   prev_tick_event_seq := s.sub_last_seq;
    END IF;
END
$$;

-- next_batch(queue_name, consumer_name): next_batch_info's batch id only.
CREATE FUNCTION pgque.next_batch(queue_name text, consumer_name text) RETURNS bigint
LANGUAGE sql AS $$
    SELECT batch_id FROM pgque.next_batch_info(queue_name, consumer_name)
$$;

-- get_batch_events(batch_id): every event of an open batch, in delivery
-- order.  ev_retry is NULL on first delivery.  Errors: PQ004.
CREATE FUNCTION pgque.get_batch_events(batch_id bigint,
    OUT ev_id bigint, OUT ev_time timestamptz, OUT ev_txid bigint, OUT ev_retry int,
    OUT ev_type text, OUT ev_data text,
    OUT ev_extra1 text, OUT ev_extra2 text, OUT ev_extra3 text, OUT ev_extra4 text)
RETURNS SETOF record
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s pgque.subscription := pgque._batch_sub(batch_id);
BEGIN
    IF s.sub_id IS NULL THEN
        PERFORM pgque._batch_not_found(batch_id);
    END IF;
    RETURN QUERY
        SELECT e.ev_id, e.ev_time, e.ev_txid::text::bigint, e.ev_retry, e.ev_type, e.ev_data,
               e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4
          FROM pgque._batch_rows(s, true, '', 'ORDER BY ev_txid, ev_id', NULL, NULL, NULL) e;
END
$$;

-- finish_batch(batch_id): finish a batch whatever was read of it; the
-- consumer moves on to the events after it.  Returns 1, or 0 (with a
-- WARNING, as PgQ does) when the batch is not open.
CREATE FUNCTION pgque.finish_batch(batch_id bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s pgque.subscription := pgque._batch_sub(batch_id);
BEGIN
    IF s.sub_id IS NULL THEN
        RAISE WARNING 'pgque: batch % is not open', batch_id;
        RETURN 0;
    END IF;
    PERFORM pgque._finish_batch(s);
    RETURN 1;
END
$$;
