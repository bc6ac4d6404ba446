-- Looking without taking: what a consumer has not acknowledged (peek), and
-- what was sent to a queue (find_events).

-- peek(queue_name, consumer_name [, max_return]): up to max_return
-- messages the consumer has not acknowledged yet, in the order they are
-- handed out: first those in batches that are open (a worker's window, the
-- consumer's own batch, or the part of a tick range still being cut into
-- windows), oldest first, then those it would get next, up to the newest
-- tick.  Messages handed out and not acknowledged are included (they come
-- again unless acknowledged); events not ticked yet, retries not yet due
-- and delayed events are not.  Moves nothing, locks nothing, saves
-- nothing: an operator may call it at any time.
--   batch_id     the open batch holding the message (a window's or the
--                consumer's batch id, as get_worker_info() and
--                get_consumer_info() show them, not a piece id); NULL when it
--                is in no open batch yet
--   worker_name  the worker whose window holds it; NULL for the consumer's
--                own batch and for what is not handed out yet
-- It reads up to max_return rows of each open batch and of the next one:
-- as cheap as receiving them.  Errors: PQ001, PQ003, PQ006 (max_return NULL
-- or below 1).
CREATE FUNCTION pgque.peek(queue_name text, consumer_name text, max_return int DEFAULT 100)
RETURNS TABLE (msg_id bigint, batch_id bigint, worker_name text, type text, payload text, retry_count int,
               created_at timestamptz, extra1 text, extra2 text, extra3 text, extra4 text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp
                 SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
                 SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
    c    pgque.subscription;
    w    pgque.subscription;
    t    pgque.tick;
    room bigint := max_return;
    n    bigint;
BEGIN
    PERFORM pgque._authorize($1, 'receive');
    PERFORM pgque._check_int('max_return', max_return, 1);
    c := pgque._subscription($1, $2, false);
    FOR w IN SELECT * FROM pgque.subscription x WHERE x.sub_parent = c.sub_id AND x.sub_batch IS NOT NULL
              ORDER BY x.sub_last_tick, x.sub_start_txid NULLS FIRST, x.sub_start_id NULLS FIRST
    LOOP
        EXIT WHEN room <= 0;
        RETURN QUERY SELECT e.ev_id, w.sub_batch, substr(w.sub_consumer, length(c.sub_consumer) + 2), e.ev_type,
                            e.ev_data, e.ev_retry, e.ev_time, e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4
                       FROM pgque._batch_rows(w, false, '', 'ORDER BY ev_txid, ev_id LIMIT $2', room, NULL, NULL) e;
        GET DIAGNOSTICS n = ROW_COUNT;
        room := room - n;
    END LOOP;
    IF room > 0 AND c.sub_next_tick IS NOT NULL THEN
        -- Its own open batch, or the rest of the tick range being cut.
        RETURN QUERY SELECT e.ev_id, c.sub_batch, NULL::text, e.ev_type, e.ev_data, e.ev_retry, e.ev_time,
                            e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4
                       FROM pgque._batch_rows(c, false, '', 'ORDER BY ev_txid, ev_id LIMIT $2', room, NULL, NULL) e;
        GET DIAGNOSTICS n = ROW_COUNT;
        room := room - n;
        c := pgque._past_range(c);
    END IF;
    t := pgque._last_tick(c.sub_queue);
    IF room > 0 AND t.tick_id > c.sub_last_tick THEN
        -- The batch a receive would open next, up to the newest tick.
        c := pgque._range_to(pgque._clear_batch(c), t);
        RETURN QUERY SELECT e.ev_id, NULL::bigint, NULL::text, e.ev_type, e.ev_data, e.ev_retry, e.ev_time,
                            e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4
                       FROM pgque._batch_rows(c, false, '', 'ORDER BY ev_txid, ev_id LIMIT $2', room, NULL, NULL) e;
    END IF;
END
$$;

-- find_events(queue_name [, event_type, this_transaction, max_return]): up
-- to max_return of the events sent to the queue that its tables and its
-- delayed store still hold, newest (highest msg_id) first: what a test
-- asserts a transaction or a function sent, or what an operator looks for.
-- Events are listed whether or not consumers got them; retries and replays
-- of dead letters (copies for one consumer) are not sends and are left out;
-- a delayed event not yet due has deliver_at set.  Rotation reclaims
-- events: an answer covers at least the last rotation_period.
--   event_type        only events of this type (NULL: all)
--   this_transaction  only events the calling transaction sent (not yet
--                     committed); false: every event the caller can see
-- It reads the queue's event tables through, with no index to help: meant
-- for tests and inspection, not for the hot path.  Moves, locks and saves
-- nothing.  Errors: PQ001, PQ006 (this_transaction or max_return NULL,
-- max_return below 1), 42501.
CREATE FUNCTION pgque.find_events(queue_name text, event_type text DEFAULT NULL,
                                  this_transaction boolean DEFAULT false, max_return int DEFAULT 100)
RETURNS TABLE (msg_id bigint, type text, payload text, created_at timestamptz, deliver_at timestamptz,
               extra1 text, extra2 text, extra3 text, extra4 text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q    pgque.queue;
    mine xid8;
BEGIN
    PERFORM pgque._authorize($1, 'receive');
    PERFORM pgque._check_int('max_return', max_return, 1);
    IF this_transaction IS NULL THEN
        RAISE EXCEPTION 'pgque: this_transaction must not be NULL' USING ERRCODE = 'PQ006';
    END IF;
    q := pgque._queue($1);
    IF this_transaction THEN
        mine := pg_current_xact_id_if_assigned();
        IF mine IS NULL THEN
            RETURN;  -- it has written nothing, so sent nothing
        END IF;
    END IF;
    RETURN QUERY
    SELECT x.* FROM (
        SELECT e.ev_id, e.ev_type, e.ev_data, e.ev_time, NULL::timestamptz,
               e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4
          FROM pgque.event e
         WHERE e.ev_slot >= q.queue_slot AND e.ev_slot < q.queue_slot + q.queue_ntables
           AND e.ev_owner IS NULL AND e.ev_retry IS NULL
           AND (mine IS NULL OR e.ev_txid = mine)
           AND (event_type IS NULL OR e.ev_type = event_type)
        UNION ALL
        SELECT d.ev_id, d.ev_type, d.ev_data, d.ev_time, d.dq_due,
               d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4
          FROM pgque.delayed d
         WHERE d.dq_queue = q.queue_id
           AND NOT EXISTS (SELECT 1 FROM pgque.delayed_done x WHERE x.dd_queue = d.dq_queue AND x.ev_id = d.ev_id)
           AND (mine IS NULL OR d.dq_txid = mine)
           AND (event_type IS NULL OR d.ev_type = event_type)
    ) x
    ORDER BY 1 DESC
    LIMIT max_return;
END
$$;
