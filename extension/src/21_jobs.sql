-- Jobs you can see: where one message stands for every consumer of its
-- queue, derived from what the engine keeps anyway.
--
-- No message has a state row: an event's fate for a consumer follows from
-- the event row's (ev_txid, ev_id) position against the consumer's
-- position (its finished tick's snapshot), its open batch or tick range
-- (the next tick's snapshot and how far it was acknowledged and handed
-- out), its workers' windows, and the small stores: retry_queue,
-- dead_letter, delayed and delayed_done.  A retried or replayed event is a
-- copy owned by one consumer (ev_owner) under the same id; the newest copy
-- a consumer owns says where it stands, otherwise the original does.

-- _in_batch(s, txid, id): the row (txid, id) belongs to s's open batch or
-- tick range: committed between its two ticks, and inside its window
-- (after sub_start_*, up to sub_end_*) when it is a worker's window.
CREATE FUNCTION pgque._in_batch(s pgque.subscription, txid xid8, id bigint) RETURNS boolean
LANGUAGE sql IMMUTABLE AS $$
    SELECT s.sub_next_snapshot IS NOT NULL
       AND pg_visible_in_snapshot(txid, s.sub_next_snapshot)
       AND NOT pg_visible_in_snapshot(txid, s.sub_last_snapshot)
       AND (s.sub_start_txid IS NULL OR (txid, id) > (s.sub_start_txid, s.sub_start_id))
       AND (s.sub_end_txid IS NULL OR (txid, id) <= (s.sub_end_txid, s.sub_end_id))
$$;

-- _batch_progress(s, txid, id): where the row (txid, id) of s's open batch
-- stands: 'done' up to the acknowledged position, 'handed_out' up to the
-- end of the newest piece, 'pending' after.  A consumer's tick range being
-- cut into windows (sub_batch NULL) hands out nothing itself: its
-- acknowledged position is how far it was cut, and a row cut into a
-- window no worker holds any more was finished with that window.
CREATE FUNCTION pgque._batch_progress(s pgque.subscription, txid xid8, id bigint) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN s.sub_ack_txid IS NOT NULL AND (txid, id) <= (s.sub_ack_txid, s.sub_ack_id) THEN 'done'
        WHEN s.sub_batch IS NOT NULL AND s.sub_sent_txid IS NOT NULL
             AND (txid, id) <= (s.sub_sent_txid, s.sub_sent_id) THEN 'handed_out'
        ELSE 'pending' END
$$;

-- _row_status(c, e, t): where the event row e stands for consumer c, t
-- being the queue's newest tick: 'not_ticked', or inside one of c's
-- workers' windows (worker_name, lease_until set) or c's own batch
-- (_batch_progress), or 'done' when c's position is past it, else
-- 'pending'.
CREATE FUNCTION pgque._row_status(c pgque.subscription, e pgque.event, t pgque.tick,
                                  OUT state text, OUT worker_name text, OUT lease_until timestamptz)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    w pgque.subscription;
BEGIN
    IF t.tick_id IS NULL OR NOT pg_visible_in_snapshot(e.ev_txid, t.tick_snapshot) THEN
        state := 'not_ticked';
        RETURN;
    END IF;
    -- Windows first: a worker may still hold a window of a tick range its
    -- consumer's position has moved past.
    FOR w IN SELECT * FROM pgque.subscription x WHERE x.sub_parent = c.sub_id AND x.sub_batch IS NOT NULL LOOP
        IF pgque._in_batch(w, e.ev_txid, e.ev_id) THEN
            state := pgque._batch_progress(w, e.ev_txid, e.ev_id);
            worker_name := substr(w.sub_consumer, length(c.sub_consumer) + 2);
            lease_until := w.sub_lease_until;
            RETURN;
        END IF;
    END LOOP;
    IF pgque._in_batch(c, e.ev_txid, e.ev_id) THEN
        state := pgque._batch_progress(c, e.ev_txid, e.ev_id);
    ELSIF pg_visible_in_snapshot(e.ev_txid, c.sub_last_snapshot) THEN
        state := 'done';
    ELSE
        state := 'pending';
    END IF;
END
$$;

-- message_status(queue_name, msg_id): where the message msg_id of the
-- queue stands, one row per consumer (ordered by name; one row with
-- consumer_name NULL when the queue has none), each with the message
-- itself as far as a table or store still holds it (NULL columns
-- otherwise).  state is one of:
--   not_ticked  sent and committed, not in a tick yet (no consumer can get it)
--   pending     ticked, not handed out to this consumer yet; position_at
--               is the time of the tick the consumer finished last (how
--               far behind it is)
--   handed_out  received and not acknowledged: worker_name (NULL for a
--               plain reader) and lease_until (workers only) say by whom
--   done        acknowledged, or the consumer's position is past it (also
--               when it subscribed after the message was ticked)
--   retrying    nacked, waiting in the retry store: retry_count is the
--               attempt that comes next, due_at when
--   dead        in the dead letters: reason, dead_at, retry_count
--   delayed     sent with send_at and not due yet: due_at (every consumer)
--   cancelled   a delayed send cancelled with cancel_scheduled()
--   unclaimed   the queue has no consumer; the event is kept or passed
--   unknown     no table or store holds it: never sent, not committed
--               yet, or reclaimed by rotation
-- retry_count, as in receive(), is NULL for a first delivery.  Reads the
-- queue's event tables through (no index on ev_id: one would cost every
-- send), so its cost grows with what the queue holds, like find_events();
-- the stores are read by key.  An event stays findable until rotation
-- reclaims its table (at least rotation_period after it was sent, longer
-- while a consumer lags); retry, dead-letter and delayed entries as long as
-- they are stored.  Moves, locks and saves nothing.
-- Errors: PQ001, PQ006 (msg_id NULL), 42501.
CREATE FUNCTION pgque.message_status(queue_name text, msg_id bigint)
RETURNS TABLE (consumer_name text, state text, worker_name text, lease_until timestamptz, retry_count int,
               due_at timestamptz, reason text, dead_at timestamptz, position_at timestamptz,
               type text, payload text, created_at timestamptz,
               extra1 text, extra2 text, extra3 text, extra4 text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q      pgque.queue;
    t      pgque.tick;
    copies pgque.event[];   -- every row of the event the tables hold, oldest first
    e      pgque.event;     -- the row that says where the event stands for c
    m      pgque.event;     -- what is known of the message itself
    d      pgque.delayed;
    done   pgque.delayed_done;
    c      pgque.subscription;
    rq     pgque.retry_queue;
    dl     pgque.dead_letter;
    r      record;
BEGIN
    PERFORM pgque._authorize($1, 'receive');
    IF $2 IS NULL THEN
        PERFORM pgque._invalid('msg_id', 'must not be NULL');
    END IF;
    q := pgque._queue($1);
    t := pgque._last_tick(q.queue_id);
    copies := ARRAY(SELECT x FROM pgque.event x
                     WHERE x.ev_slot >= q.queue_slot AND x.ev_slot < q.queue_slot + q.queue_ntables
                       AND x.ev_id = $2
                     ORDER BY x.ev_txid);
    SELECT * INTO d FROM pgque.delayed x WHERE x.dq_queue = q.queue_id AND x.ev_id = $2 LIMIT 1;
    SELECT * INTO done FROM pgque.delayed_done x WHERE x.dd_queue = q.queue_id AND x.ev_id = $2 LIMIT 1;
    SELECT * INTO m FROM unnest(copies) x ORDER BY x.ev_owner NULLS FIRST, x.ev_txid LIMIT 1;
    IF m.ev_id IS NULL AND d.ev_id IS NOT NULL THEN
        m.ev_id := d.ev_id;       m.ev_time := d.ev_time;     m.ev_type := d.ev_type;   m.ev_data := d.ev_data;
        m.ev_extra1 := d.ev_extra1;  m.ev_extra2 := d.ev_extra2;  m.ev_extra3 := d.ev_extra3;  m.ev_extra4 := d.ev_extra4;
    END IF;
    FOR c IN SELECT * FROM pgque.subscription x WHERE x.sub_queue = q.queue_id AND x.sub_parent IS NULL
              ORDER BY x.sub_consumer LOOP
        consumer_name := c.sub_consumer;
        state := NULL;  worker_name := NULL;  lease_until := NULL;  retry_count := NULL;
        due_at := NULL;  reason := NULL;  dead_at := NULL;
        position_at := c.sub_last_time;
        SELECT * INTO dl FROM pgque.dead_letter x
         WHERE x.dl_queue = q.queue_id AND x.dl_consumer = c.sub_consumer AND x.ev_id = $2;
        SELECT * INTO rq FROM pgque.retry_queue x WHERE x.rq_sub = c.sub_id AND x.ev_id = $2;
        SELECT * INTO e FROM unnest(copies) x
         WHERE x.ev_owner = c.sub_id OR x.ev_owner IS NULL
         ORDER BY x.ev_owner NULLS LAST, x.ev_txid DESC LIMIT 1;
        IF dl.dl_id IS NOT NULL THEN
            state := 'dead';  reason := dl.dl_reason;  dead_at := dl.dl_time;  retry_count := dl.ev_retry;
            m.ev_time := coalesce(m.ev_time, dl.ev_time);  m.ev_type := coalesce(m.ev_type, dl.ev_type);
            m.ev_data := coalesce(m.ev_data, dl.ev_data);
        ELSIF rq.rq_sub IS NOT NULL THEN
            state := 'retrying';  due_at := rq.rq_due;  retry_count := nullif(rq.ev_retry, 0);  -- 0: snoozed, never failed
            m.ev_time := coalesce(m.ev_time, rq.ev_time);  m.ev_type := coalesce(m.ev_type, rq.ev_type);
            m.ev_data := coalesce(m.ev_data, rq.ev_data);
        ELSIF e.ev_id IS NOT NULL THEN
            SELECT * INTO r FROM pgque._row_status(c, e, t);
            state := r.state;  worker_name := r.worker_name;  lease_until := r.lease_until;
            retry_count := e.ev_retry;
        END IF;
        state := coalesce(state, pgque._stored_status(d, done));
        IF state = 'delayed' THEN
            due_at := d.dq_due;
        END IF;
        type := m.ev_type;  payload := m.ev_data;  created_at := m.ev_time;
        extra1 := m.ev_extra1;  extra2 := m.ev_extra2;  extra3 := m.ev_extra3;  extra4 := m.ev_extra4;
        RETURN NEXT;
    END LOOP;
    IF NOT FOUND THEN
        state := CASE WHEN cardinality(copies) > 0 THEN 'unclaimed'
                      ELSE pgque._stored_status(d, done) END;
        due_at := CASE WHEN state = 'delayed' THEN d.dq_due END;
        type := m.ev_type;  payload := m.ev_data;  created_at := m.ev_time;
        extra1 := m.ev_extra1;  extra2 := m.ev_extra2;  extra3 := m.ev_extra3;  extra4 := m.ev_extra4;
        RETURN NEXT;
    END IF;
END
$$;

-- _stored_status(d, done): the state of a message no event row tells
-- about, from the delayed store: 'delayed' while parked, 'cancelled' once
-- cancel_scheduled() took it back, else 'unknown' (a published delayed
-- event whose row rotation reclaimed, or no such message).
CREATE FUNCTION pgque._stored_status(d pgque.delayed, done pgque.delayed_done) RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE WHEN done.dd_queue IS NOT NULL AND NOT done.dd_moved THEN 'cancelled'
                WHEN d.dq_queue IS NOT NULL AND done.dd_queue IS NULL THEN 'delayed'
                ELSE 'unknown' END
$$;

-- _pending_rows(c, t, after_msg_id, event_type, since, until, max_return):
-- what consumer c has not finished, in msg_id order, as list_messages()
-- returns it.  Rows older than the xmin of c's position and of its
-- workers' windows were finished long ago, so the scan starts there, on
-- the tables' (ev_txid, ev_id) index; each row left is placed as
-- message_status() places it.  A message nacked and not acknowledged yet
-- is the retry store's (retrying), not pending.
CREATE FUNCTION pgque._pending_rows(c pgque.subscription, t pgque.tick, after_msg_id bigint, event_type text,
                                    since timestamptz, until timestamptz, max_return int)
RETURNS TABLE (msg_id bigint, consumer_name text, state text, worker_name text, lease_until timestamptz,
               retry_count int, due_at timestamptz, reason text, dead_at timestamptz,
               type text, payload text, created_at timestamptz,
               extra1 text, extra2 text, extra3 text, extra4 text)
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q  pgque.queue;
    lo xid8 := pg_snapshot_xmin(c.sub_last_snapshot);
BEGIN
    SELECT * INTO q FROM pgque.queue x WHERE x.queue_id = c.sub_queue;
    SELECT least(lo, min(pg_snapshot_xmin(x.sub_last_snapshot))) INTO lo
      FROM pgque.subscription x WHERE x.sub_parent = c.sub_id AND x.sub_batch IS NOT NULL;
    RETURN QUERY
    SELECT e.ev_id, c.sub_consumer, r.state, r.worker_name, r.lease_until, e.ev_retry,
           NULL::timestamptz, NULL::text, NULL::timestamptz, e.ev_type, e.ev_data, e.ev_time,
           e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4
      FROM pgque.event e
     CROSS JOIN LATERAL pgque._row_status(c, e, t) r
     WHERE e.ev_slot >= q.queue_slot AND e.ev_slot < q.queue_slot + q.queue_ntables
       AND e.ev_txid >= lo
       AND (e.ev_owner IS NULL OR e.ev_owner = c.sub_id)
       AND pg_visible_in_snapshot(e.ev_txid, t.tick_snapshot)
       AND (after_msg_id IS NULL OR e.ev_id > after_msg_id)
       AND (event_type IS NULL OR e.ev_type = event_type)
       AND (since IS NULL OR e.ev_time >= since) AND (until IS NULL OR e.ev_time < until)
       AND r.state IN ('pending', 'handed_out')
       AND NOT EXISTS (SELECT 1 FROM pgque.retry_queue x WHERE x.rq_sub = c.sub_id AND x.ev_id = e.ev_id)
       AND NOT EXISTS (SELECT 1 FROM pgque.dead_letter x
                        WHERE x.dl_queue = c.sub_queue AND x.dl_consumer = c.sub_consumer AND x.ev_id = e.ev_id)
     ORDER BY e.ev_id
     LIMIT max_return;
END
$$;

-- list_messages(queue_name, list_state [, for_consumer, max_return,
-- after_msg_id, event_type, since, until]): the queue's messages in one
-- state, oldest (lowest msg_id) first, up to max_return messages after
-- the cursor after_msg_id (pass the last msg_id of a page to get the
-- next).  Columns as message_status(), with msg_id first.
--   pending   what for_consumer (required) has not finished: not handed
--             out yet, or handed out and not acknowledged (state
--             handed_out); ticked events only.  since/until filter on
--             created_at.  Reads the consumer's backlog in the event
--             tables: its cost grows with how far behind it is.
--   retrying  the retry store, of for_consumer or of every consumer;
--             since/until filter on due_at.
--   dead      the dead letters, of for_consumer or of every consumer;
--             since/until filter on dead_at.
--   delayed   delayed sends not yet due (for every consumer;
--             consumer_name NULL in the rows); since/until filter on due_at.
-- With every consumer, a message may have a row per consumer: max_return
-- counts messages, so a page never splits one.  since is inclusive,
-- until exclusive; event_type NULL means every type.  Moves, locks and
-- saves nothing.
-- Errors: PQ001, PQ003 (for_consumer not subscribed), PQ006 (list_state
-- not one of the four, pending without for_consumer, max_return NULL or
-- below 1), 42501.
CREATE FUNCTION pgque.list_messages(queue_name text, list_state text, for_consumer text DEFAULT NULL,
                                    max_return int DEFAULT 100, after_msg_id bigint DEFAULT NULL,
                                    event_type text DEFAULT NULL, since timestamptz DEFAULT NULL,
                                    until timestamptz DEFAULT NULL)
RETURNS TABLE (msg_id bigint, consumer_name text, state text, worker_name text, lease_until timestamptz,
               retry_count int, due_at timestamptz, reason text, dead_at timestamptz,
               type text, payload text, created_at timestamptz,
               extra1 text, extra2 text, extra3 text, extra4 text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q pgque.queue;
    c pgque.subscription;
BEGIN
    PERFORM pgque._authorize($1, 'receive');
    PERFORM pgque._check_int('max_return', $4, 1);
    IF $2 IS NULL OR $2 NOT IN ('pending', 'retrying', 'dead', 'delayed') THEN
        PERFORM pgque._invalid('list_state', coalesce(quote_literal($2), 'NULL')
                                        || ' is not one of pending, retrying, dead, delayed');
    END IF;
    q := pgque._queue($1);
    IF $3 IS NOT NULL THEN
        c := pgque._subscription($1, $3, false);
    ELSIF $2 = 'pending' THEN
        PERFORM pgque._invalid('for_consumer', 'must not be NULL for the state pending');
    END IF;
    IF $2 = 'pending' THEN
        RETURN QUERY SELECT * FROM pgque._pending_rows(c, pgque._last_tick(q.queue_id), $5, $6, $7, $8, $4);
        RETURN;
    END IF;
    RETURN QUERY
    WITH x AS (
        SELECT r.ev_id AS id, s.sub_consumer AS who, 'retrying' AS st, nullif(r.ev_retry, 0) AS n, r.rq_due AS due,
               NULL::text AS why, NULL::timestamptz AS died, r.rq_due AS at,
               r.ev_type AS t, r.ev_data AS p, r.ev_time AS made,
               r.ev_extra1 AS x1, r.ev_extra2 AS x2, r.ev_extra3 AS x3, r.ev_extra4 AS x4
          FROM pgque.retry_queue r JOIN pgque.consumer s ON s.sub_id = r.rq_sub
         WHERE $2 = 'retrying' AND r.rq_queue = q.queue_id AND (c.sub_id IS NULL OR r.rq_sub = c.sub_id)
        UNION ALL
        SELECT d.ev_id, d.dl_consumer, 'dead', d.ev_retry, NULL, d.dl_reason, d.dl_time, d.dl_time,
               d.ev_type, d.ev_data, d.ev_time, d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4
          FROM pgque.dead_letter d
         WHERE $2 = 'dead' AND d.dl_queue = q.queue_id AND (c.sub_id IS NULL OR d.dl_consumer = c.sub_consumer)
        UNION ALL
        SELECT d.ev_id, NULL, 'delayed', NULL, d.dq_due, NULL, NULL, d.dq_due,
               d.ev_type, d.ev_data, d.ev_time, d.ev_extra1, d.ev_extra2, d.ev_extra3, d.ev_extra4
          FROM pgque.delayed d
         WHERE $2 = 'delayed' AND d.dq_queue = q.queue_id
           AND NOT EXISTS (SELECT 1 FROM pgque.delayed_done x WHERE x.dd_queue = d.dq_queue AND x.ev_id = d.ev_id)
    ), f AS (
        SELECT * FROM x
         WHERE ($5 IS NULL OR x.id > $5) AND ($6 IS NULL OR x.t = $6)
           AND ($7 IS NULL OR x.at >= $7) AND ($8 IS NULL OR x.at < $8)
    )
    SELECT f.id, f.who, f.st, NULL::text, NULL::timestamptz, f.n, f.due, f.why, f.died,
           f.t, f.p, f.made, f.x1, f.x2, f.x3, f.x4
      FROM f
     WHERE f.id IN (SELECT DISTINCT y.id FROM f y ORDER BY y.id LIMIT $4)
     ORDER BY f.id, f.who;
END
$$;
