-- Introspection: version, engine_id, get_queue_info, get_consumer_info, get_table_info,
-- get_batch_info.

-- version(): the installed pgque version.
CREATE FUNCTION pgque.version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '@VERSION@' $$;

-- engine_id(): which build of the engine is installed: a digest of its
-- source, different for every change, where version() changes only with a
-- release.  Installers compare it with their own engine's, so that a
-- server's stale extension files of the same version are noticed.
CREATE FUNCTION pgque.engine_id() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '@ENGINE_ID@' $$;

-- _info_seq(seq): _seq_value(seq), or NULL when seq is not a sequence (a
-- value broken by hand): the info functions go on reporting the other
-- queues, and this one's errors, instead of failing as a whole.
CREATE FUNCTION pgque._info_seq(seq regclass) RETURNS bigint
LANGUAGE sql AS $$
    SELECT CASE WHEN (SELECT c.relkind FROM pg_catalog.pg_class c WHERE c.oid = seq) = 'S'
                THEN pgque._seq_value(seq) END
$$;

-- get_queue_info([queue_name [, namespace]]): one row per queue (or the
-- named one, or those of a namespace) that the session may inspect.
--   ticker_lag        time since the newest tick
--   ev_per_sec        events sent per second over the last minute or so:
--                     (event sequence now - its value at the reference tick)
--                     / seconds since that tick, where the reference tick is
--                     the newest tick at least a minute old, or the oldest
--                     tick kept when none is (approximate, like ev_new)
--   ev_new            events sent since the newest tick (approximate: counts
--                     rolled-back sends, and retries and replays re-inserted)
--   ev_total          events sent since the queue was created: its event
--                     sequence, a counter for rates (approximate like
--                     ev_new; NULL when the sequence was broken by hand)
--   retry_pending     events waiting in the retry store
--   paused, paused_at whether (and since when) pause_queue() holds it
--   event_bytes       disk size of its event tables, indexes and TOAST included
--   event_dead_tuples dead rows in its event tables, from the statistics
--                     collector (only rolled-back sends leave any; rotation's
--                     TRUNCATE clears them)
--   keep_unclaimed    its keep_unclaimed setting
--   unclaimed_events  events kept for the first consumer because the queue
--                     has none (approximate, like ev_new); 0 while it has
--                     consumers.  While above 0, the queue's tables cannot
--                     rotate: subscribe a consumer, or turn keep_unclaimed off
--   unclaimed_since   the tick the unclaimed events start after (NULL while
--                     the queue has consumers)
--   errors            consecutive failures of the queue's periodic work (the
--                     failing steps' counts summed; 0 when all is well).  A
--                     step that fails (ticker(): 'tick'; maint(): 'rotate',
--                     'retry', 'delayed') is recorded while the other queues
--                     go on, and forgotten when it next succeeds
--   last_error_step, last_error_sqlstate, last_error, last_error_at
--                     the newest recorded failure: step, SQLSTATE, message
--                     and when (NULL when errors is 0)
-- A queue that drop_queue() is dropping right now is left out (no waiting
-- for the drop).
-- Errors: PQ001 for an unknown queue_name; PQ006 for an invalid queue name
-- or namespace.
CREATE FUNCTION pgque.get_queue_info(text DEFAULT NULL, namespace text DEFAULT NULL)
RETURNS TABLE (queue_name text, queue_ntables int, queue_cur_table int, queue_rotation_period interval,
               queue_switch_time timestamptz, queue_ticker_max_count int, queue_ticker_max_lag interval,
               queue_ticker_idle_period interval, queue_max_retries int,
               queue_retry_backoff_base interval, queue_retry_backoff_cap interval,
               ticker_lag interval, ev_per_sec double precision, ev_new bigint, ev_total bigint,
               last_tick_id bigint, consumers int, retry_pending bigint, dead_letters bigint,
               paused boolean, paused_at timestamptz, event_bytes bigint, event_dead_tuples bigint,
               keep_unclaimed boolean, unclaimed_events bigint, unclaimed_since timestamptz,
               errors bigint, last_error_step text, last_error_sqlstate text, last_error text,
               last_error_at timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    ids int[];
BEGIN
    -- Parameters are positional: their names would clash with the output columns.
    IF $1 IS NOT NULL THEN
        PERFORM pgque._queue($1);
    END IF;
    IF $2 IS NOT NULL THEN
        PERFORM pgque._check_namespace($2);
    END IF;
    -- First the queues whose sequences and tables may be read (_queue_live:
    -- not being dropped, and held so until we end), then the query.
    ids := ARRAY(SELECT x.queue_id FROM pgque.queue x
                  WHERE ($1 IS NULL OR x.queue_name = $1) AND ($2 IS NULL OR pgque._namespace(x.queue_name) = $2)
                    AND pgque._may(x.queue_name, 'inspect'));
    ids := ARRAY(SELECT i FROM unnest(ids) i WHERE pgque._queue_live(i));
    RETURN QUERY
    SELECT q.queue_name, q.queue_ntables, (q.queue_gen % q.queue_ntables)::int, q.queue_rotation_period,
           q.queue_switch_time, q.queue_ticker_max_count, q.queue_ticker_max_lag,
           q.queue_ticker_idle_period, q.queue_max_retries,
           q.queue_retry_backoff_base, q.queue_retry_backoff_cap,
           now() - t.tick_time,
           coalesce(CASE WHEN now() > r.tick_time
                THEN greatest(seq.seq_now - r.tick_event_seq, 0) / extract(epoch FROM now() - r.tick_time)::double precision
                END, 0),
           coalesce(greatest(seq.seq_now - t.tick_event_seq, 0), 0),
           seq.seq_now,
           t.tick_id,
           (SELECT count(*)::int FROM pgque.consumer c WHERE c.sub_queue = q.queue_id AND c.sub_parent IS NULL),
           (SELECT count(*) FROM pgque.retry_queue rq WHERE rq.rq_queue = q.queue_id),
           (SELECT count(*) FROM pgque.dead_letter d WHERE d.dl_queue = q.queue_id),
           q.queue_paused_at IS NOT NULL, q.queue_paused_at,
           ev.bytes, ev.dead,
           q.queue_keep_unclaimed, coalesce(greatest(seq.seq_now - coalesce(q.queue_unclaimed_seq, seq.seq_now), 0), 0),
           q.queue_unclaimed_time,
           coalesce(er.n, 0), er.step, er.sqlstate, er.message, er.at
      FROM pgque.queue q
     CROSS JOIN LATERAL pgque._last_tick(q.queue_id) t
     CROSS JOIN LATERAL (SELECT pgque._info_seq(q.queue_event_seq) AS seq_now) seq
      LEFT JOIN LATERAL (
          (SELECT x.tick_time, x.tick_event_seq FROM pgque.tick x
            WHERE x.tick_queue = q.queue_id AND x.tick_time <= now() - interval '1 minute'
            ORDER BY x.tick_id DESC LIMIT 1)
          UNION ALL
          (SELECT x.tick_time, x.tick_event_seq FROM pgque.tick x
            WHERE x.tick_queue = q.queue_id ORDER BY x.tick_id LIMIT 1)
          LIMIT 1) r ON true
     CROSS JOIN LATERAL (
          SELECT sum(pg_total_relation_size(e))::bigint AS bytes, sum(pg_stat_get_dead_tuples(e))::bigint AS dead
            FROM generate_series(0, q.queue_ntables - 1) n,
                 to_regclass(pgque._event_table(q.queue_id, n)) e) ev
      LEFT JOIN LATERAL (
          SELECT sum(x.qe_count) OVER ()::bigint AS n, x.qe_step AS step, x.qe_sqlstate AS sqlstate,
                 x.qe_message AS message, x.qe_at AS at
            FROM pgque.queue_error x WHERE x.qe_queue = q.queue_id
           ORDER BY x.qe_at DESC, x.qe_step LIMIT 1) er ON true
     WHERE q.queue_id = ANY (ids)
     ORDER BY q.queue_name;
END
$$;

-- get_unclaimed_info(): the queues (that the session may inspect) that
-- keep events for a first consumer: no consumer yet, keep_unclaimed on, and
-- events in ticks since the unclaimed position.  Counted up to the newest
-- tick, so it reads no sequence and takes no lock per queue: a few
-- microseconds a queue, where get_queue_info() costs about a millisecond.
-- What the Go Ticker checks every minute, with any number of queues.
-- Returns queue_name, unclaimed_events, unclaimed_since, by queue name.
CREATE FUNCTION pgque.get_unclaimed_info()
RETURNS TABLE (queue_name text, unclaimed_events bigint, unclaimed_since timestamptz)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    RETURN QUERY
    SELECT q.queue_name, t.tick_event_seq - q.queue_unclaimed_seq, q.queue_unclaimed_time
      FROM pgque.queue q
     CROSS JOIN LATERAL (SELECT x.tick_event_seq FROM pgque.tick x WHERE x.tick_queue = q.queue_id
                          ORDER BY x.tick_id DESC LIMIT 1) t
     WHERE q.queue_keep_unclaimed AND t.tick_event_seq > q.queue_unclaimed_seq
       AND pgque._may(q.queue_name, 'inspect')
     ORDER BY q.queue_name;
END
$$;

-- get_consumer_info([queue_name [, consumer_name [, namespace]]]): one row
-- per consumer (of the queue, of a namespace) that the session may inspect.
-- Its position, for lag, pending_events and blocking_rotation, is the
-- oldest of its own and of the windows its cooperative workers hold.
--   lag               age of the oldest event not delivered to it yet, as an
--                     upper bound: time since the tick its position starts
--                     after (the events before that tick are consumed), or 0
--                     when pending_events is 0
--   last_seen         time since the consumer last opened, acked or finished
--                     a batch of its own, or handed a window to a worker
--   pending_events    events not yet consumed by it, estimated from the
--                     queue's event sequence: its value now minus its value
--                     at the consumer's position.  Counts open batches and
--                     workers' windows until they are finished, events not
--                     ticked yet, and rolled-back sends and re-inserted
--                     retries (also other consumers'), so it is mostly an
--                     upper bound; it misses events of a transaction that
--                     was still open when the tick its position starts
--                     after was taken (their ids were counted then)
--   retry_pending     its events waiting in the retry store
--   dead_letters      its dead letters
--   blocking_rotation true when this consumer is what keeps the queue's
--                     tables from rotating: rotation is due, and the queue
--                     has ticked past the last switch but this consumer
--                     (or a window one of its workers holds) has not got up
--                     to there.  A stopped consumer, or a worker whose
--                     handler hangs while it keeps renewing its lease, makes
--                     the queue's storage grow until it resumes or is
--                     unsubscribed.  (While a long transaction holds every
--                     tick before the switch, no consumer is blamed.)
--   batch_age         age of its oldest open batch, its own or a worker's
--                     window, NULL when none: the time since the batch's
--                     end tick.  A batch was opened after that tick and
--                     before the next one, so this exceeds the time since
--                     the opening by less than one tick interval; never less
--   worker_batches    how many windows its cooperative workers hold
-- Consumers of a queue that drop_queue() is dropping right now are left out.
-- Errors: PQ001 unknown queue, PQ003 unknown consumer (when named), PQ006
-- invalid name or namespace.
CREATE FUNCTION pgque.get_consumer_info(text DEFAULT NULL, text DEFAULT NULL, namespace text DEFAULT NULL)
RETURNS TABLE (queue_name text, consumer_name text, lag interval, last_seen interval,
               last_tick bigint, current_batch bigint, next_tick bigint, pending_events bigint,
               retry_pending bigint, dead_letters bigint, blocking_rotation boolean, batch_age interval,
               worker_batches int)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    ids int[];
BEGIN
    -- Parameters are positional: their names would clash with the output columns.
    IF $2 IS NOT NULL THEN
        PERFORM pgque._subscription($1, $2, false);
    ELSIF $1 IS NOT NULL THEN
        PERFORM pgque._queue($1);
    END IF;
    IF $3 IS NOT NULL THEN
        PERFORM pgque._check_namespace($3);
    END IF;
    -- Queues being dropped are left out, as in get_queue_info().
    ids := ARRAY(SELECT x.queue_id FROM pgque.queue x
                  WHERE ($1 IS NULL OR x.queue_name = $1) AND ($3 IS NULL OR pgque._namespace(x.queue_name) = $3)
                    AND pgque._may(x.queue_name, 'inspect'));
    ids := ARRAY(SELECT i FROM unnest(ids) i WHERE pgque._queue_live(i));
    RETURN QUERY
    SELECT q.queue_name, s.sub_consumer,
           CASE WHEN p.pending > 0 THEN now() - pos.last_time ELSE interval '0' END,
           now() - s.sub_active,
           s.sub_last_tick, s.sub_batch, s.sub_next_tick, p.pending,
           (SELECT count(*) FROM pgque.retry_queue r WHERE r.rq_sub = s.sub_id),
           (SELECT count(*) FROM pgque.dead_letter d WHERE d.dl_queue = q.queue_id AND d.dl_consumer = s.sub_consumer),
           coalesce(pos.xmin < q.queue_switch_post AND pg_snapshot_xmin(t.tick_snapshot) >= q.queue_switch_post, false)
             AND now() - q.queue_switch_time >= q.queue_rotation_period,  -- as maint_rotate_tables_step1
           now() - least(CASE WHEN s.sub_batch IS NOT NULL THEN s.sub_next_time END, w.next_time),
           w.n
      FROM pgque.subscription s
      JOIN pgque.queue q ON q.queue_id = s.sub_queue
     CROSS JOIN LATERAL pgque._last_tick(q.queue_id) t
     CROSS JOIN LATERAL (SELECT count(*)::int AS n, min(x.sub_last_seq) AS seq, min(x.sub_last_time) AS last_time,
                                min(pg_snapshot_xmin(x.sub_last_snapshot)) AS xmin, min(x.sub_next_time) AS next_time
                           FROM pgque.subscription x WHERE x.sub_parent = s.sub_id AND x.sub_batch IS NOT NULL) w
     CROSS JOIN LATERAL (SELECT least(s.sub_last_seq, w.seq) AS seq, least(s.sub_last_time, w.last_time) AS last_time,
                                least(pg_snapshot_xmin(s.sub_last_snapshot), w.xmin) AS xmin) pos
     CROSS JOIN LATERAL (SELECT coalesce(greatest(pgque._info_seq(q.queue_event_seq) - pos.seq, 0), 0) AS pending) p
     WHERE q.queue_id = ANY (ids)
       AND ($2 IS NULL OR s.sub_consumer = $2)
       AND s.sub_parent IS NULL  -- workers: get_worker_info()
     ORDER BY q.queue_name, s.sub_consumer;
END
$$;

-- get_table_info(): size and row statistics of pgque's tables, database
-- wide, one row per table with its partitions summed: the catalog
-- (queue, consumer, event_slot), the insert-only logs (tick, sub_state), the
-- retry and dead-letter stores, the event tables of every queue
-- (pgque.event), the insert-only delayed and dedup stores, schedules and
-- access grants.  Dead tuples show what vacuum still has to do: the logs and
-- event tables are insert-only and recycled by TRUNCATE, so theirs stay at
-- zero (rolled-back inserts aside).  Tuple counts and vacuum times come from
-- the statistics collector, which sessions report to about once a second.
--   total_bytes  disk size, indexes and TOAST included
--   last_vacuum  latest manual or auto vacuum of any of its partitions
CREATE FUNCTION pgque.get_table_info()
RETURNS TABLE (table_name text, partitions int, total_bytes bigint, live_tuples bigint, dead_tuples bigint,
               last_vacuum timestamptz)
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
    SELECT 'pgque.' || t.name, count(*)::int, sum(pg_total_relation_size(p.relid))::bigint,
           sum(pg_stat_get_live_tuples(p.relid))::bigint, sum(pg_stat_get_dead_tuples(p.relid))::bigint,
           max(greatest(pg_stat_get_last_vacuum_time(p.relid), pg_stat_get_last_autovacuum_time(p.relid)))
      FROM unnest(ARRAY['queue', 'consumer', 'event_slot', 'tick', 'sub_state', 'retry_queue', 'dead_letter', 'event',
                        'delayed', 'delayed_done', 'delayed_pos', 'dedup', 'schedule', 'acl'])
           WITH ORDINALITY t(name, ord)
     CROSS JOIN LATERAL (SELECT c.oid AS relid FROM pg_class c
                          WHERE c.oid = ('pgque.' || t.name)::regclass AND c.relkind <> 'p'
                         UNION ALL
                         SELECT x.relid FROM pg_partition_tree(('pgque.' || t.name)::regclass) x
                          WHERE x.isleaf) p
     GROUP BY t.name, t.ord
     ORDER BY t.ord
$$;

-- get_batch_info(batch_id): where an open batch starts and ends.
--   lag   time since the batch's end tick
-- Errors: PQ004 batch not open.
CREATE FUNCTION pgque.get_batch_info(batch_id bigint,
    OUT queue_name text, OUT consumer_name text, OUT batch_start timestamptz, OUT batch_end timestamptz,
    OUT prev_tick_id bigint, OUT tick_id bigint, OUT lag interval, OUT seq_start bigint, OUT seq_end bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    IF batch_id IS NULL THEN
        PERFORM pgque._invalid('batch id', 'must not be NULL');
    END IF;
    SELECT q.queue_name, s.sub_consumer, s.sub_last_time, s.sub_next_time, s.sub_last_tick, s.sub_next_tick,
           now() - s.sub_next_time, s.sub_last_seq, s.sub_next_seq
      INTO queue_name, consumer_name, batch_start, batch_end, prev_tick_id, tick_id, lag, seq_start, seq_end
      FROM pgque.subscription s JOIN pgque.queue q ON q.queue_id = s.sub_queue AND pgque._may(q.queue_name, 'inspect')
     WHERE s.sub_batch = get_batch_info.batch_id;
    IF NOT FOUND THEN
        PERFORM pgque._batch_not_found(batch_id);
    END IF;
END
$$;
