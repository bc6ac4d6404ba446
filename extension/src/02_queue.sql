-- Queue lifecycle: create_queue, drop_queue, set_queue_config, pause_queue,
-- resume_queue.

-- _event_group(base): the partition group (see pgque.event) that the
-- slots from base belong to, made and attached, with its send hints
-- (pgque.event_group), when it is the first queue of the group.  Returns
-- the group's hint and seen sequences.  Takes the group's advisory lock until the
-- transaction ends: creators of one group are serialized by it, and the
-- ticker sees by it that a queue it cannot see yet may be on its way.
CREATE FUNCTION pgque._event_group(base int, OUT hint regclass, OUT seen regclass)
LANGUAGE plpgsql AS $$
DECLARE
    slots constant int := 64 * 16;  -- 64 queues of up to 16 tables
    g     int := base / slots;
    grp   text := format('pgque.event_g%s', g);
BEGIN
    PERFORM pg_advisory_xact_lock(pgque._lock_ns() + 6, g);
    IF to_regclass(grp) IS NULL THEN
        EXECUTE format('CREATE TABLE %s (LIKE pgque.event INCLUDING DEFAULTS) PARTITION BY LIST (ev_slot)', grp);
        EXECUTE format('ALTER TABLE pgque.event ATTACH PARTITION %s FOR VALUES FROM (%s) TO (%s)',
                       grp, g * slots, (g + 1) * slots);
    END IF;
    SELECT x.g_hint, x.g_seen INTO hint, seen FROM pgque.event_group x WHERE x.g_id = g;
    IF NOT FOUND THEN
        EXECUTE format('CREATE UNLOGGED SEQUENCE %s_hint', grp);
        EXECUTE format('CREATE UNLOGGED SEQUENCE %s_seen MINVALUE -1', grp);
        INSERT INTO pgque.event_group (g_id, g_hint, g_seen)
        VALUES (g, format('%s_hint', grp)::regclass, format('%s_seen', grp)::regclass)
        RETURNING g_hint, g_seen INTO hint, seen;
    END IF;
END
$$;

-- create_queue(queue_name, if_not_exists): create a queue with its event
-- tables, sequences and first tick.  Its events are kept for its first
-- consumer (unclaimed events, 06_subscription.sql).  Event tables are partitions of
-- pgque.event: the tables freed by drop_queue are reused, else new
-- partitions are attached to their group (which, unlike creating them as
-- partitions, does not block producers of other queues).  It takes about
-- ten locks that its transaction holds until it ends: a transaction can
-- create as many queues as the lock table has room for
-- (max_locks_per_transaction, docs/operations.md).
-- Returns 1 when created, 0 when it already existed and if_not_exists is true
-- (PgQ's meaning).  Errors: PQ006 bad name, PQ002 exists and if_not_exists is false.
CREATE FUNCTION pgque.create_queue(queue_name text, if_not_exists boolean DEFAULT true) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    qid     int;
    base    int;
    nxt     xid8;
    tick    bigint;
    tbl     text;
    grp     text;
    grpseqs record;
    n       int;
    ntables int := 3;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._check_name('queue', queue_name, 57);
    -- Serialize creators of one name so the loser sees the winner's row.
    PERFORM pg_advisory_xact_lock(pgque._lock_ns() + 2, hashtext(queue_name));
    IF EXISTS (SELECT 1 FROM pgque.queue q WHERE q.queue_name = create_queue.queue_name) THEN
        IF coalesce(if_not_exists, true) THEN
            RETURN 0;
        END IF;
        RAISE EXCEPTION 'pgque: queue % already exists', quote_literal(queue_name) USING ERRCODE = 'PQ002';
    END IF;

    qid := nextval(pg_get_serial_sequence('pgque.queue', 'queue_id'));
    EXECUTE format('CREATE SEQUENCE pgque.event_%s_seq', qid);
    EXECUTE format('CREATE SEQUENCE pgque.event_%s_gen MINVALUE 0 START 0', qid);
    PERFORM setval(format('pgque.event_%s_gen', qid)::regclass, 0, true);

    SELECT slot_base INTO base FROM pgque.event_slot WHERE slot_queue IS NULL
     ORDER BY slot_base LIMIT 1 FOR UPDATE SKIP LOCKED;
    IF FOUND THEN
        FOR n IN 0 .. ntables - 1 LOOP
            tbl := format('pgque.event_free_%s', base + n);
            -- A producer that raced drop_queue may have written here since.
            EXECUTE format('TRUNCATE %s', tbl);
            EXECUTE format('ALTER TABLE %s RENAME TO %I', tbl, format('event_%s_%s', qid, n));
        END LOOP;
        UPDATE pgque.event_slot SET slot_queue = qid WHERE slot_base = base;
        grpseqs := pgque._event_group(base);
    ELSE
        base := (nextval('pgque.event_slot_seq') - 1) * 16;  -- room for up to 16 tables
        grpseqs := pgque._event_group(base);
        grp := format('pgque.event_g%s', base / (64 * 16));
        FOR n IN 0 .. ntables - 1 LOOP
            tbl := pgque._event_table(qid, n);
            -- Insert-only and truncated, never updated: no free space to keep,
            -- nothing for autovacuum to do.
            EXECUTE format('CREATE TABLE %s (LIKE pgque.event INCLUDING DEFAULTS)'
                           ' WITH (fillfactor = 100, autovacuum_enabled = false, toast.autovacuum_enabled = false)', tbl);
            -- The only index: batches are txid ranges, read in (ev_txid, ev_id)
            -- order so that receive() can resume after any row by seeking.
            EXECUTE format('CREATE INDEX ON %s (ev_txid, ev_id)', tbl);
            -- Readers may read every queue's events anyway; reading them
            -- straight is receive_query()'s fast path.
            EXECUTE format('GRANT SELECT ON %s TO pgque_reader', tbl);
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %s FOR VALUES IN (%s)', grp, tbl, base + n);
        END LOOP;
        INSERT INTO pgque.event_slot (slot_base, slot_queue) VALUES (base, qid);
    END IF;

    -- Everything this transaction and later ones write is after the first
    -- tick: its snapshot sees no transaction from our own xid on.  Until a
    -- consumer subscribes, the events are unclaimed (06_subscription.sql).
    nxt := pg_current_xact_id();
    tick := nextval('pgque.tick_id_seq');
    INSERT INTO pgque.queue (queue_id, queue_name, queue_ntables, queue_slot, queue_gen_seq, queue_event_seq,
                             queue_hint_seq, queue_seen_seq, queue_switch_pre, queue_switch_post, queue_unclaimed_tick, queue_unclaimed_time,
                             queue_unclaimed_snapshot, queue_unclaimed_seq)
    VALUES (qid, queue_name, ntables, base, format('pgque.event_%s_gen', qid)::regclass,
            format('pgque.event_%s_seq', qid)::regclass, grpseqs.hint, grpseqs.seen, nxt, nxt,
            tick, now(), format('%s:%s:', nxt, nxt)::pg_snapshot, 0);
    INSERT INTO pgque.tick (tick_part, tick_queue, tick_id, tick_time, tick_snapshot, tick_event_seq)
    VALUES (pgque._log_part(), qid, tick, now(), format('%s:%s:', nxt, nxt)::pg_snapshot, 0);
    PERFORM setval('pgque.idle_due', 0);
    RETURN 1;
END
$$;

-- drop_queue(queue_name, force): drop a queue, its events, ticks, retries and
-- dead letters.  Refuses while consumers are subscribed unless force is true.
-- Waits for transactions that are sending to the queue to finish.  The event
-- tables are emptied and kept for the next create_queue.  While it runs,
-- ticker(), maint() and the info functions skip the queue instead of
-- waiting for it.
-- Returns 1.  Errors: PQ001 unknown queue, PQ007 consumers exist.
CREATE FUNCTION pgque.drop_queue(queue_name text, force boolean DEFAULT false) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q         pgque.queue := pgque._queue(queue_name);
    consumers text;
    n         int;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    -- Before anything is dropped: the lock that maint()'s steps and the info
    -- functions try (shared) and skip the queue while we hold it, then the
    -- tick lock, which ticker() tries and skips likewise.  Both wait only
    -- for calls that are already reading the queue.
    PERFORM pg_advisory_xact_lock(pgque._lock_ns() + 4, q.queue_id);
    PERFORM pg_advisory_xact_lock(pgque._lock_ns(), q.queue_id);
    PERFORM 1 FROM pgque.queue WHERE queue_id = q.queue_id FOR UPDATE;
    IF NOT FOUND THEN  -- dropped while we waited for the lock
        q := pgque._queue(queue_name);
    END IF;
    SELECT string_agg(quote_literal(sub_consumer), ', ' ORDER BY sub_consumer) INTO consumers
      FROM pgque.consumer WHERE sub_queue = q.queue_id AND sub_parent IS NULL;
    IF consumers IS NOT NULL AND NOT coalesce(force, false) THEN
        RAISE EXCEPTION 'pgque: queue % still has consumers: %', quote_literal(queue_name), consumers
            USING ERRCODE = 'PQ007', HINT = 'Unsubscribe them first, or call drop_queue(name, force => true).';
    END IF;
    -- TRUNCATE waits for the producers that are writing to the queue.
    EXECUTE format('TRUNCATE %s', (SELECT string_agg(pgque._event_table(q.queue_id, i), ', ')
                                     FROM generate_series(0, q.queue_ntables - 1) i));
    FOR n IN 0 .. q.queue_ntables - 1 LOOP
        EXECUTE format('ALTER TABLE %s RENAME TO %I', pgque._event_table(q.queue_id, n),
                       format('event_free_%s', q.queue_slot + n));
    END LOOP;
    UPDATE pgque.event_slot SET slot_queue = NULL WHERE slot_base = q.queue_slot;
    EXECUTE format('DROP SEQUENCE %s, %s', q.queue_event_seq, q.queue_gen_seq);
    DELETE FROM pgque.tick WHERE tick_queue = q.queue_id;
    DELETE FROM pgque.queue_error WHERE qe_queue = q.queue_id;
    DELETE FROM pgque.queue WHERE queue_id = q.queue_id;  -- cascades to subscriptions, retries, dead letters
    RETURN 1;
END
$$;

-- set_queue_config(queue_name, param, value): change one setting of a queue.
-- Parameters (the PgQ spelling with a 'queue_' prefix is accepted too), with
-- their ranges (S is _max_span(), 100 years):
--   ticker_max_count    int 1 .. 2^31-1      tick once this many events wait
--   ticker_max_lag      interval 0 .. S      ... or once the oldest waits this long
--   ticker_idle_period  interval (0, S]      tick an idle queue this often
--   rotation_period     interval (0, S]      switch event tables this often
--   max_retries         int 0 .. 2^31-1      nacks before an event is dead-lettered
--   retry_backoff_base  interval 0 .. S      first retry delay, doubled per retry
--   retry_backoff_cap   interval 0 .. S      longest retry delay
--   retry_jitter        float 0 .. 1         share of a computed backoff taken off at random
--   keep_unclaimed      boolean      keep events sent while the queue has no
--                                    consumer for the first one (default true);
--                                    off lets them go with rotation
-- Returns 1.  Errors: PQ001 unknown queue, PQ006 unknown parameter, NULL,
-- malformed or out-of-range value.
CREATE FUNCTION pgque.set_queue_config(queue_name text, param text, value text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q    pgque.queue := pgque._queue(queue_name);
    name text := regexp_replace(lower(coalesce(param, '')), '^queue_', '');
    kind text := CASE WHEN name IN ('ticker_max_count', 'max_retries') THEN 'integer'
                      WHEN name IN ('ticker_max_lag', 'ticker_idle_period', 'rotation_period',
                                    'retry_backoff_base', 'retry_backoff_cap') THEN 'interval'
                      WHEN name = 'retry_jitter' THEN 'number'
                      WHEN name = 'keep_unclaimed' THEN 'boolean' END;
    i    bigint;
    iv   interval;
    f    float8;
    b    boolean;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    IF kind IS NULL THEN
        PERFORM pgque._invalid('parameter', format('%s (known: ticker_max_count, ticker_max_lag, '
            'ticker_idle_period, rotation_period, max_retries, retry_backoff_base, retry_backoff_cap, retry_jitter, '
            'keep_unclaimed)', pgque._quote(param)));
    ELSIF value IS NULL THEN
        PERFORM pgque._invalid(name, 'must not be NULL');
    END IF;
    BEGIN
        CASE kind
            WHEN 'integer' THEN i := value::bigint;
            WHEN 'interval' THEN iv := value::interval;
            WHEN 'number' THEN f := value::float8;
            ELSE b := value::boolean;
        END CASE;
    EXCEPTION WHEN invalid_text_representation OR datetime_field_overflow OR invalid_datetime_format
                   OR numeric_value_out_of_range OR interval_field_overflow THEN
        PERFORM pgque._invalid(name, format('%s is not a valid %s', pgque._quote(value), kind));
    END;
    CASE name
        WHEN 'ticker_max_count' THEN PERFORM pgque._check_int(name, i, 1, 2147483647);
        WHEN 'max_retries' THEN PERFORM pgque._check_int(name, i, 0, 2147483647);
        WHEN 'ticker_idle_period', 'rotation_period' THEN
            PERFORM pgque._check_interval(name, iv, interval '0', pgque._max_span(), true);
        WHEN 'retry_jitter' THEN
            IF NOT (f BETWEEN 0 AND 1) THEN  -- NaN too: it sorts above every number
                PERFORM pgque._invalid(name, format('%s is out of range: must be from 0 to 1', pgque._quote(value)));
            END IF;
        WHEN 'keep_unclaimed' THEN NULL;
        ELSE PERFORM pgque._check_interval(name, iv, interval '0', pgque._max_span());
    END CASE;

    UPDATE pgque.queue SET
        queue_ticker_max_count   = CASE WHEN name = 'ticker_max_count'   THEN i::int ELSE queue_ticker_max_count END,
        queue_max_retries        = CASE WHEN name = 'max_retries'        THEN i::int ELSE queue_max_retries END,
        queue_ticker_max_lag     = CASE WHEN name = 'ticker_max_lag'     THEN iv ELSE queue_ticker_max_lag END,
        queue_ticker_idle_period = CASE WHEN name = 'ticker_idle_period' THEN iv ELSE queue_ticker_idle_period END,
        queue_rotation_period    = CASE WHEN name = 'rotation_period'    THEN iv ELSE queue_rotation_period END,
        queue_retry_backoff_base = CASE WHEN name = 'retry_backoff_base' THEN iv ELSE queue_retry_backoff_base END,
        queue_retry_backoff_cap  = CASE WHEN name = 'retry_backoff_cap'  THEN iv ELSE queue_retry_backoff_cap END,
        queue_retry_jitter       = CASE WHEN name = 'retry_jitter'       THEN f ELSE queue_retry_jitter END,
        queue_keep_unclaimed     = CASE WHEN name = 'keep_unclaimed'     THEN b ELSE queue_keep_unclaimed END,
        queue_unclaimed_tick     = CASE WHEN name = 'keep_unclaimed' AND NOT b THEN NULL ELSE queue_unclaimed_tick END,
        queue_unclaimed_time     = CASE WHEN name = 'keep_unclaimed' AND NOT b THEN NULL ELSE queue_unclaimed_time END,
        queue_unclaimed_snapshot = CASE WHEN name = 'keep_unclaimed' AND NOT b THEN NULL ELSE queue_unclaimed_snapshot END,
        queue_unclaimed_seq      = CASE WHEN name = 'keep_unclaimed' AND NOT b THEN NULL ELSE queue_unclaimed_seq END
     WHERE queue_id = q.queue_id;
    IF name = 'ticker_idle_period' THEN
        PERFORM setval('pgque.idle_due', 0);  -- the ticker looks for idle queues again (04_ticker.sql)
    END IF;
    IF b THEN
        PERFORM pgque._keep_unclaimed(q.queue_id);  -- from now on, when it has no consumer
    END IF;
    RETURN 1;
END
$$;

-- _set_paused(queue_name, paused): mark the queue paused (now) or running.
-- Returns the queue row as it was, locked, or NULL when it already was so.
-- Errors: PQ001, PQ006.
CREATE FUNCTION pgque._set_paused(queue_name text, paused boolean) RETURNS pgque.queue
LANGUAGE plpgsql AS $$
DECLARE
    q pgque.queue;
BEGIN
    SELECT * INTO q FROM pgque.queue x WHERE x.queue_name = _set_paused.queue_name FOR NO KEY UPDATE;
    IF NOT FOUND THEN
        q := pgque._queue(queue_name);  -- raises, unless it was created meanwhile
    END IF;
    IF (q.queue_paused_at IS NOT NULL) = paused THEN
        RETURN NULL;
    END IF;
    UPDATE pgque.queue SET queue_paused_at = CASE WHEN paused THEN now() END WHERE queue_id = q.queue_id;
    RETURN q;
END
$$;

-- pause_queue(queue_name): stop handing out the queue's events until
-- resume_queue().  Producers, the ticker and maintenance carry on, so nothing
-- sent meanwhile is lost; consumers get nothing: receive() returns no rows and
-- next_batch() / next_batch_info() return NULL, for a batch that is open
-- (no further piece of it) as for a new one.  An open batch stays open with
-- its progress, and the calls on a batch id keep working (ack, nack,
-- finish_batch, get_batch_events, event_retry, get_batch_info), so what was
-- handed out before the pause can be acknowledged.  Waits for the consumer
-- calls on the queue that are in progress (they hold their consumer's row
-- lock until their transaction ends): once it has committed, no consumer is
-- handed anything more.
-- Returns 1 when paused, 0 when it was paused already.
-- Errors: PQ001 unknown queue, PQ006 NULL or invalid name.
CREATE FUNCTION pgque.pause_queue(queue_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    q := pgque._set_paused(queue_name, true);
    IF q.queue_id IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM pgque.consumer WHERE sub_queue = q.queue_id FOR KEY SHARE;
    RETURN 1;
END
$$;

-- resume_queue(queue_name): let consumers receive from a paused queue
-- again, and wake them: NOTIFY on the queue's channel with the newest tick
-- id as payload, as a tick does.  Receiving continues where each consumer
-- stopped: an open batch after its acknowledged position, then everything
-- sent and ticked during the pause.
-- Returns 1 when resumed, 0 when it was not paused.
-- Errors: PQ001 unknown queue, PQ006 NULL or invalid name.
CREATE FUNCTION pgque.resume_queue(queue_name text) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    q := pgque._set_paused(queue_name, false);
    IF q.queue_id IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM pg_notify(pgque._channel(q.queue_name), (pgque._last_tick(q.queue_id)).tick_id::text);
    RETURN 1;
END
$$;
