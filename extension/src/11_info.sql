-- Introspection: version, get_queue_info, get_consumer_info, get_batch_info.

-- version(): the installed pgque version.
CREATE FUNCTION pgque.version() RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT '1.0.0' $$;

-- get_queue_info([queue_name]): one row per queue (or the named one).
--   ticker_lag     time since the newest tick
--   ev_new         events sent since the newest tick (approximate: counts
--                  rolled-back sends too)
--   ev_per_sec     event rate over the ticks kept (about the last minute)
--   retry_pending  events waiting in the retry store
-- Errors: PQ001 for an unknown queue_name.
CREATE FUNCTION pgque.get_queue_info(text DEFAULT NULL)
RETURNS TABLE (queue_name text, queue_ntables int, queue_cur_table int, queue_rotation_period interval,
               queue_switch_time timestamptz, queue_ticker_max_count int, queue_ticker_max_lag interval,
               queue_ticker_idle_period interval, queue_max_retries int,
               queue_retry_backoff_base interval, queue_retry_backoff_cap interval,
               ticker_lag interval, ev_per_sec double precision, ev_new bigint, last_tick_id bigint,
               consumers int, retry_pending bigint, dead_letters bigint)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    -- Parameters are positional: their names would clash with the output columns.
    IF $1 IS NOT NULL THEN
        PERFORM pgque._queue($1);
    END IF;
    RETURN QUERY
    SELECT q.queue_name, q.queue_ntables, (q.queue_gen % q.queue_ntables)::int, q.queue_rotation_period,
           q.queue_switch_time, q.queue_ticker_max_count, q.queue_ticker_max_lag,
           q.queue_ticker_idle_period, q.queue_max_retries,
           q.queue_retry_backoff_base, q.queue_retry_backoff_cap,
           now() - t.last_time,
           CASE WHEN t.last_time > t.first_time
                THEN (t.last_seq - t.first_seq) / extract(epoch FROM t.last_time - t.first_time)::double precision
                ELSE 0 END,
           greatest(pgque._seq_value(q.queue_event_seq) - t.last_seq, 0),
           t.last_id,
           (SELECT count(*)::int FROM pgque.consumer s WHERE s.sub_queue = q.queue_id AND s.sub_parent IS NULL),
           (SELECT count(*) FROM pgque.retry_queue r WHERE r.rq_queue = q.queue_id),
           (SELECT count(*) FROM pgque.dead_letter d WHERE d.dl_queue = q.queue_id)
      FROM pgque.queue q
      CROSS JOIN LATERAL (
          SELECT max(tick_id) AS last_id, max(tick_time) AS last_time, max(tick_event_seq) AS last_seq,
                 min(tick_time) AS first_time, min(tick_event_seq) AS first_seq
            FROM pgque.tick WHERE tick_queue = q.queue_id) t
     WHERE $1 IS NULL OR q.queue_name = $1
     ORDER BY q.queue_name;
END
$$;

-- get_consumer_info([queue_name [, consumer_name]]): one row per subscription.
--   lag               time since the tick the consumer last finished (how far behind it is)
--   last_seen         time since the consumer last opened, acked or finished a batch
--   pending_events    events sent after its position (approximate, like ev_new)
--   blocking_rotation true when this consumer is what keeps the queue's
--                     tables from rotating: rotation is due, and the queue
--                     has ticked past the last switch but this consumer has
--                     not finished a batch up to there.  A stopped consumer
--                     makes the queue's storage grow until it resumes or is
--                     unsubscribed.  (While a long transaction holds every
--                     tick before the switch, no consumer is blamed.)
-- Errors: PQ001 unknown queue, PQ003 unknown consumer (when named).
CREATE FUNCTION pgque.get_consumer_info(text DEFAULT NULL, text DEFAULT NULL)
RETURNS TABLE (queue_name text, consumer_name text, lag interval, last_seen interval,
               last_tick bigint, current_batch bigint, next_tick bigint, pending_events bigint,
               retry_pending bigint, dead_letters bigint, blocking_rotation boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    -- Parameters are positional: their names would clash with the output columns.
    IF $2 IS NOT NULL THEN
        PERFORM pgque._subscription($1, $2, false);
    ELSIF $1 IS NOT NULL THEN
        PERFORM pgque._queue($1);
    END IF;
    RETURN QUERY
    SELECT q.queue_name, s.sub_consumer, now() - s.sub_last_time, now() - s.sub_active,
           s.sub_last_tick, s.sub_batch, s.sub_next_tick,
           greatest(pgque._seq_value(q.queue_event_seq) - s.sub_last_seq, 0),
           (SELECT count(*) FROM pgque.retry_queue r WHERE r.rq_sub = s.sub_id),
           (SELECT count(*) FROM pgque.dead_letter d WHERE d.dl_queue = q.queue_id AND d.dl_consumer = s.sub_consumer),
           coalesce(pg_snapshot_xmin(s.sub_last_snapshot) < q.queue_switch_post
                    AND pg_snapshot_xmin(t.tick_snapshot) >= q.queue_switch_post, false)
             AND now() >= q.queue_switch_time + q.queue_rotation_period
      FROM pgque.subscription s
      JOIN pgque.queue q ON q.queue_id = s.sub_queue
      CROSS JOIN LATERAL pgque._last_tick(q.queue_id) t
     WHERE ($1 IS NULL OR q.queue_name = $1)
       AND ($2 IS NULL OR s.sub_consumer = $2)
       AND s.sub_parent IS NULL  -- workers: get_worker_info()
     ORDER BY q.queue_name, s.sub_consumer;
END
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
      FROM pgque.subscription s JOIN pgque.queue q ON q.queue_id = s.sub_queue
     WHERE s.sub_batch = get_batch_info.batch_id;
    IF NOT FOUND THEN
        PERFORM pgque._batch_not_found(batch_id);
    END IF;
END
$$;
