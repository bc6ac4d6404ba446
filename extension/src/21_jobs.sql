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
