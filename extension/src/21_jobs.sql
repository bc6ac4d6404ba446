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

-- _message_queue(queue_name, msg_id, privilege): the queue of a call
-- about one of its messages, once the caller may privilege it (42501) and
-- msg_id is not NULL (PQ006).  PQ001 for an unknown queue.
CREATE FUNCTION pgque._message_queue(queue_name text, msg_id bigint, privilege text) RETURNS pgque.queue
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque._authorize(queue_name, privilege);
    IF msg_id IS NULL THEN
        PERFORM pgque._invalid('msg_id', 'must not be NULL');
    END IF;
    RETURN pgque._queue(queue_name);
END
$$;

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
--               attempt that comes next, due_at when, reason the one
--               nack() was given (NULL for a snooze)
--   dead        in the dead letters: reason, dead_at, retry_count
--   delayed     sent with send_at and not due yet: due_at (every consumer)
--   cancelled   cancel() took it back for this consumer (worker_name
--               still says who holds it if it was handed out and not
--               acknowledged), or a delayed send was cancelled
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
    q := pgque._message_queue($1, $2, 'receive');
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
            state := 'retrying';  due_at := rq.rq_due;  retry_count := rq.ev_retry;  reason := rq.rq_reason;
            m.ev_time := coalesce(m.ev_time, rq.ev_time);  m.ev_type := coalesce(m.ev_type, rq.ev_type);
            m.ev_data := coalesce(m.ev_data, rq.ev_data);
        ELSIF e.ev_id IS NOT NULL THEN
            SELECT * INTO r FROM pgque._row_status(c, e, t);
            state := r.state;  worker_name := r.worker_name;  lease_until := r.lease_until;
            retry_count := e.ev_retry;
        END IF;
        IF coalesce(state, '') <> 'dead' AND pgque._cancelled(q.queue_id, c.sub_id, $2) THEN
            state := 'cancelled';
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
        state := CASE WHEN pgque._cancelled(q.queue_id, NULL, $2) THEN 'cancelled'
                      WHEN cardinality(copies) > 0 THEN 'unclaimed'
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
-- is the retry store's (retrying), not pending; a cancelled one is never
-- handed out again, so it is not pending either.
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
       AND NOT pgque._cancelled(c.sub_queue, c.sub_id, e.ev_id)
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
        SELECT r.ev_id AS id, s.sub_consumer AS who, 'retrying' AS st, r.ev_retry AS n, r.rq_due AS due,
               r.rq_reason AS why, NULL::timestamptz AS died, r.rq_due AS at,
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

-- Cancellation.  A cancelled message is never handed out again: a batch
-- query skips the ids in this store for its consumer when a cancelled row
-- may be in its batch (_batch_ctx, _batch_sql); the event tables are not
-- touched.  One row per consumer the message was cancelled for (cx_sub
-- NULL: the queue had no consumer, so for whichever comes) and per event
-- row of it that consumer may still be handed (the original and a retry
-- copy: cx_txid is the row's ev_txid, NULL when there is none), so that
-- only the batches whose txid range holds one of them pay for the check,
-- however many cancellations wait elsewhere.  cx_gen is the queue's table
-- generation when it was cancelled: the message's rows are in that
-- generation's table or older, and no new copy can follow (cancel() empties
-- the retry store, and a nack of it returns 'cancelled'), so maint()
-- forgets the row once every table of those generations was reclaimed.
CREATE TABLE pgque.cancelled (
    cx_queue int         NOT NULL REFERENCES pgque.queue ON DELETE CASCADE,
    cx_id    bigint      NOT NULL,
    cx_sub   int         REFERENCES pgque.consumer ON DELETE CASCADE,
    cx_gen   bigint      NOT NULL,
    cx_held  boolean     NOT NULL,   -- it was handed out and not acknowledged then
    cx_time  timestamptz NOT NULL DEFAULT now(),
    cx_txid  xid8
);
CREATE INDEX ON pgque.cancelled (cx_queue, cx_id);
CREATE INDEX ON pgque.cancelled (cx_queue, cx_sub, cx_txid);
DO $$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('pgque.cancelled', '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- plain SQL install: not an extension
END
$$;

-- _cancelled(queue_id, sub_id, id): message id of the queue is cancelled
-- for the consumer sub_id.
CREATE FUNCTION pgque._cancelled(queue_id int, sub_id int, id bigint) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pgque.cancelled x
                    WHERE x.cx_queue = queue_id AND x.cx_id = id AND (x.cx_sub IS NULL OR x.cx_sub = sub_id))
$$;

-- _record_cancel(q, id, sub_id, held, txids): store the cancellation of
-- message id of q for the consumer sub_id (NULL: whichever comes), one row
-- per txid of an event row of it (none: one row with a NULL txid), unless
-- it is cancelled for that consumer already.  held: it was handed out and
-- not acknowledged, for heartbeat() to report.
CREATE FUNCTION pgque._record_cancel(q pgque.queue, id bigint, sub_id int, held boolean, txids xid8[])
RETURNS void
LANGUAGE sql AS $$
    INSERT INTO pgque.cancelled (cx_queue, cx_id, cx_sub, cx_gen, cx_held, cx_txid)
    SELECT q.queue_id, _record_cancel.id, _record_cancel.sub_id, pgque._seq_value(q.queue_gen_seq),
           _record_cancel.held, t.txid
      FROM unnest(coalesce(nullif(txids, '{}'), ARRAY[NULL::xid8])) t(txid)
     WHERE NOT pgque._cancelled(q.queue_id, _record_cancel.sub_id, _record_cancel.id)
$$;

-- _forget_cancelled(): forget the cancellations whose messages rotation
-- reclaimed (see pgque.cancelled).  Returns how many.
CREATE FUNCTION pgque._forget_cancelled() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM pgque.cancelled x USING pgque.queue q
     WHERE q.queue_id = x.cx_queue AND q.queue_gen >= x.cx_gen + q.queue_ntables;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- cancel(queue_name, msg_id [, for_consumer]): take a message back before
-- it is handled: for for_consumer only, or (NULL) for every consumer of
-- the queue.  Returns one row per consumer (consumer_name NULL when the
-- queue has none) with the outcome:
--   cancelled   it will never be handed out to it (it was pending, not
--               ticked yet, retrying: its retry is dropped, or delayed:
--               the delayed send is cancelled for every consumer)
--   handed_out  it is being handled: it is cancelled as well (never handed
--               out again, nack() returns 'cancelled'), and heartbeat() of
--               the piece holding it returns 2 so its worker can stop
--   done, dead  too late: it was handled already; nothing changes
--   unknown     nothing holds it (see message_status()); nothing changes
-- Exactly one wins against delivery, retry and takeover: cancel() locks
-- the consumers and their workers as handing out does, and decides on
-- what is committed then.  Cancelling again returns the same outcomes.
-- Errors: PQ001, PQ003 (for_consumer not subscribed), PQ006 (msg_id
-- NULL), 42501 (a role that may not send to the queue).
CREATE FUNCTION pgque.cancel(queue_name text, msg_id bigint, for_consumer text DEFAULT NULL)
RETURNS TABLE (consumer_name text, outcome text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    q  pgque.queue;
    c  pgque.subscription;
    r  record;
    ids int[];
    st text;
BEGIN
    q := pgque._message_queue($1, $2, 'send');
    PERFORM pgque._require_read_committed('cancel()');
    IF $3 IS NOT NULL THEN
        c := pgque._subscription($1, $3, false);
    END IF;
    -- The consumers first, then their workers, in id order: the order
    -- receive() takes them in, so the two never deadlock.
    ids := ARRAY(SELECT x.sub_id FROM pgque.consumer x
                  WHERE x.sub_queue = q.queue_id AND x.sub_parent IS NULL AND (c.sub_id IS NULL OR x.sub_id = c.sub_id)
                  ORDER BY x.sub_id FOR UPDATE);
    PERFORM 1 FROM pgque.consumer x WHERE x.sub_parent = ANY (ids) ORDER BY x.sub_id FOR UPDATE;
    IF EXISTS (SELECT 1 FROM pgque.delayed x WHERE x.dq_queue = q.queue_id AND x.ev_id = $2)
       AND NOT EXISTS (SELECT 1 FROM pgque.delayed_done x WHERE x.dd_queue = q.queue_id AND x.ev_id = $2) THEN
        PERFORM pgque.cancel_scheduled($1, $2);
    END IF;
    FOR r IN SELECT * FROM pgque.message_status($1, $2) m
              WHERE $3 IS NULL OR m.consumer_name = $3 LOOP
        consumer_name := r.consumer_name;
        st := r.state;
        outcome := CASE WHEN st IN ('done', 'dead', 'unknown', 'handed_out') THEN st ELSE 'cancelled' END;
        IF st IN ('pending', 'not_ticked', 'retrying', 'handed_out', 'unclaimed') THEN
            SELECT * INTO c FROM pgque.subscription x
             WHERE x.sub_queue = q.queue_id AND x.sub_consumer = r.consumer_name AND x.sub_parent IS NULL;
            DELETE FROM pgque.retry_queue x WHERE x.rq_sub = c.sub_id AND x.ev_id = $2;
            -- A statement of its own, after the DELETE: a retry copy that
            -- a concurrent mover committed meanwhile is seen here.
            PERFORM pgque._record_cancel(q, $2, c.sub_id, st = 'handed_out',
                                         ARRAY(SELECT DISTINCT x.ev_txid FROM pgque.event x
                                                WHERE x.ev_slot >= q.queue_slot
                                                  AND x.ev_slot < q.queue_slot + q.queue_ntables
                                                  AND x.ev_id = $2
                                                  AND (x.ev_owner IS NULL OR x.ev_owner = c.sub_id)));
        END IF;
        RETURN NEXT;
    END LOOP;
END
$$;

-- _piece_cancelled(s, end_txid, end_id): the messages of s's open batch
-- after its acknowledged position up to the row (end_txid, end_id), the
-- end of a piece, that cancel() took back while they were handed out: what
-- heartbeat() and cancelled_messages() report to the piece's worker.
-- (Messages cancelled before they were handed out were skipped, so they
-- are not in the piece.)  Returns their ids, in delivery order.
CREATE FUNCTION pgque._piece_cancelled(s pgque.subscription, end_txid xid8, end_id bigint) RETURNS SETOF bigint
LANGUAGE plpgsql SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
                 SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
    ctx  pgque._batch_ctx := pgque._batch_ctx(s);
    cond text;
BEGIN
    IF ctx.cancels IS NULL THEN
        RETURN;
    END IF;
    cond := format(' AND (ev_txid, ev_id) <= ($4, $3) AND EXISTS (SELECT 1 FROM pgque.cancelled x'
                   ' WHERE x.cx_queue = %s AND x.cx_id = ev_id AND x.cx_sub = %s AND x.cx_held)', ctx.cancels, ctx.sub_id);
    ctx.cancels := NULL;  -- the batch with its cancelled messages
    RETURN QUERY EXECUTE pgque._batch_sql(ctx, cond, 'ORDER BY ev_txid, ev_id LIMIT $2', 'ev_id')
      USING ctx, 2147483647::bigint, end_id, end_txid;
END
$$;

-- cancelled_messages(batch_id): the ids of the messages of the piece
-- batch_id that cancel() took back while they were handed out (heartbeat()
-- returns 2 while there is one): a worker stops handling them (their
-- nack, snooze or reject returns 'cancelled') and acks the piece as usual.
-- Returns no row for an unknown or finished piece, or one taken over.
-- Errors: those of heartbeat() (PQ006 NULL batch id, PQ027 a batch id).
CREATE FUNCTION pgque.cancelled_messages(batch_id bigint) RETURNS SETOF bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    p record;
BEGIN
    SELECT * INTO p FROM pgque._piece(batch_id);
    IF (p.s).sub_id IS NOT NULL THEN
        RETURN QUERY SELECT * FROM pgque._piece_cancelled(p.s, p.end_txid, p.end_id);
    END IF;
END
$$;
