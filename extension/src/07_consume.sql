-- The modern consumer API: receive, ack, nack.
--
-- receive() hands out a batch in pieces: each call returns up to max rows
-- after the acknowledged position; ack() moves that position to the end of
-- the piece acknowledged, and finishes the batch once that was its end.
-- Rows handed out but not acked come again on the next receive (a crashed
-- consumer loses nothing), and nothing is ever skipped, whatever max is.

-- Pieces.  Every receive call that hands out rows hands them out as a new
-- piece: its id (drawn from batch_id_seq, like batch ids) is the batch_id
-- of the rows, and the state saved with it records where the piece ends.
-- ack(piece) moves the acknowledged position to that end, never further,
-- so an ack only ever finishes what its caller received, however many
-- sessions read the same consumer: a second reader that was handed the
-- same rows again (pieces start at the acknowledged position) makes
-- duplicates of unacknowledged work, never losses.

-- _save_sent(s, txid, id): save s with its open batch handed out up to the
-- row (txid, id) as the piece s.sub_piece, or, with NULLs, to its end: the
-- saved position is then past every row of the batch (each row's ev_txid
-- is below the end tick's xmax; a window with an end ends at that row), and
-- the batch done.
CREATE FUNCTION pgque._save_sent(s pgque.subscription, txid xid8, id bigint)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    s.sub_done := txid IS NULL;
    IF txid IS NOT NULL THEN
        s.sub_sent_txid := txid;                   s.sub_sent_id := id;
    ELSIF s.sub_end_txid IS NOT NULL THEN
        s.sub_sent_txid := s.sub_end_txid;         s.sub_sent_id := s.sub_end_id;
    ELSE
        s.sub_sent_txid := pg_snapshot_xmax(s.sub_next_snapshot);  s.sub_sent_id := 9223372036854775807;
    END IF;
    RETURN pgque._save(s);  -- opens the batch too, when it is new
END
$$;

-- _save_piece(s, c, more, txid, id): save s with the piece s.sub_piece
-- handed out: it ends at the row (txid, id) and more rows follow when more
-- is true, or it reaches the end of s's batch.  When c is a consumer (not
-- a NULL row), s is a worker's new window cut from c's tick range
-- (_window_of): the window is this piece, and c's range is cut up to its
-- end (or finished, when the piece reached the range's end).
CREATE FUNCTION pgque._save_piece(s pgque.subscription, c pgque.subscription, more boolean, txid xid8, id bigint)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    IF c.sub_id IS NULL THEN
        RETURN pgque._save_sent(s, CASE WHEN more THEN txid END, CASE WHEN more THEN id END);
    ELSIF more THEN
        s.sub_end_txid := txid;  s.sub_end_id := id;
        c.sub_ack_txid := txid;  c.sub_ack_id := id;
        PERFORM pgque._save(c);
    ELSE
        PERFORM pgque._finish_batch(c);
    END IF;
    RETURN pgque._save_sent(s, NULL, NULL);
END
$$;

-- _piece_end(ctx, max_return): where a piece of max_return rows read
-- after ctx's position ends.  n = 2: at (end_txid, end_id), and more rows
-- follow; n = 1: there, with the batch's last row; n = 0: fewer rows are
-- left (perhaps none).  Reads positions only.
CREATE FUNCTION pgque._piece_end(ctx pgque._batch_ctx, max_return int,
                                 OUT n bigint, OUT end_txid xid8, OUT end_id bigint)
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE 'SELECT count(*), (array_agg(ev_txid))[1], (array_agg(ev_id))[1] FROM (SELECT * FROM ('
         || pgque._batch_sql(ctx, '', 'ORDER BY ev_txid, ev_id LIMIT $2 + 1', 'ev_txid, ev_id')
         || ') p OFFSET $2 - 1) p'
       INTO n, end_txid, end_id USING ctx, max_return::bigint;
END
$$;

-- _piece(piece_id): the consumer (or worker) a piece was handed out to,
-- locked like _subscription(), with its newest state, when the batch the
-- piece came from is still its open batch; and where the piece ends.  s
-- is a NULL row when the piece is unknown (or another tenant's), or its
-- batch was finished or taken over since; taken says the latter (another
-- worker took the batch over after the lease ran out).  Raises PQ006 (NULL
-- id), PQ009, PQ027 (the id of a batch, not of a piece).
CREATE FUNCTION pgque._piece(piece_id bigint, OUT s pgque.subscription,
                             OUT end_txid xid8, OUT end_id bigint, OUT done boolean, OUT taken boolean)
LANGUAGE plpgsql AS $$
DECLARE
    id    int;
    batch bigint;
BEGIN
    IF piece_id IS NULL THEN
        PERFORM pgque._invalid('batch id', 'must not be NULL');
    END IF;
    PERFORM pgque._require_read_committed('this consumer call');
    -- Every state carrying this piece id holds the same batch and end: only
    -- handing out a piece changes them.
    SELECT x.ss_sub, x.sub_batch, x.sub_sent_txid, x.sub_sent_id, x.sub_done
      INTO id, batch, end_txid, end_id, done
      FROM pgque.sub_state x WHERE x.sub_piece = piece_id LIMIT 1;
    IF NOT FOUND THEN
        SELECT x.ss_sub INTO id FROM pgque.sub_state x WHERE x.sub_batch = piece_id LIMIT 1;
        IF FOUND AND pgque._may(pgque._consumer_queue(id), 'receive') THEN
            RAISE EXCEPTION 'pgque: % is the id of a batch, not of a piece handed out by receive()', piece_id
                USING ERRCODE = 'PQ027',
                      HINT = 'Pass the batch_id of the messages receive() returned; finish_batch() finishes a whole batch.';
        END IF;
        RETURN;
    END IF;
    -- Another tenant's piece is as unknown as a piece that does not exist.
    IF NOT pgque._may(pgque._consumer_queue(id), 'receive') THEN
        RETURN;
    END IF;
    PERFORM 1 FROM pgque.consumer WHERE sub_id = id FOR UPDATE;
    SELECT * INTO s FROM pgque.subscription x WHERE x.sub_id = id;
    taken := s.sub_batch IS DISTINCT FROM batch AND s.sub_lost_batch = batch;
    IF s.sub_batch IS DISTINCT FROM batch THEN
        s := NULL;
    END IF;
END
$$;

-- _taken_over(piece_id): raise PQ028 for a piece whose batch another worker
-- took over.
CREATE FUNCTION pgque._taken_over(piece_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pgque: the batch of piece % was taken over by another worker (its lease ran out)', piece_id
        USING ERRCODE = 'PQ028',
              HINT = 'Its messages are that worker''s now; stop handling them.';
END
$$;

-- _consumer_queue(sub_id): the name of a consumer's (or worker's) queue.
-- PL/pgSQL so that its plan is kept (see _last_tick).
CREATE FUNCTION pgque._consumer_queue(sub_id int) RETURNS text
LANGUAGE plpgsql STABLE AS $$
BEGIN
    RETURN (SELECT q.queue_name FROM pgque.consumer c JOIN pgque.queue q ON q.queue_id = c.sub_queue
             WHERE c.sub_id = _consumer_queue.sub_id);
END
$$;

-- _receiver(queue_name, consumer_name, max_return, worker_name, lease): the
-- consumer a receive call reads for, locked: the consumer itself, or its
-- cooperative worker worker_name (16_workers.sql).  A call without a worker
-- name on a consumer that its workers read is served as the worker
-- '_plain' (a name no caller can pick), so that it takes its share, takes
-- over what stopped workers left, and never reads past their windows.
-- Errors: as receive().
CREATE FUNCTION pgque._receiver(queue_name text, consumer_name text, max_return int,
                                worker_name text, lease interval) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    c pgque.subscription;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    PERFORM pgque._check_int('max_return', max_return, 1);
    lease := pgque._lease(lease);  -- checked even where unused, so that a bad value never slips through
    c := pgque._subscription(queue_name, consumer_name, true);
    IF worker_name IS NOT NULL THEN
        PERFORM pgque._check_name('worker', worker_name, 63);
    ELSIF pgque._read_by_workers(c) THEN
        worker_name := '_plain';
    ELSE
        RETURN c;
    END IF;
    RETURN pgque._worker(c, worker_name, lease);
END
$$;

-- _window(s, c): s with the batch to hand out from, and in c the consumer
-- a new worker window is cut from (a NULL row otherwise): s's open batch;
-- for a consumer, its next batch (_batch_window); for a worker, a new
-- window over the rest of its consumer's tick range (_worker_range).  A
-- NULL sub_batch when there is nothing to hand out.
CREATE FUNCTION pgque._window(INOUT s pgque.subscription, OUT c pgque.subscription)
LANGUAGE plpgsql AS $$
BEGIN
    IF s.sub_parent IS NULL THEN
        s := pgque._batch_window(s);
    ELSIF pgque._paused(s.sub_queue) THEN
        s := NULL;
    ELSIF s.sub_batch IS NULL THEN
        c := pgque._worker_range(s);
        IF c.sub_next_tick IS NULL THEN
            c := NULL;
        ELSE
            s := pgque._window_of(s, c);
        END IF;
    END IF;
END
$$;

-- _no_rows_left(s, c): s's batch has no rows left to hand out: finish it,
-- or, for a new window, the consumer's range it was cut from; return s
-- without it.
CREATE FUNCTION pgque._no_rows_left(s pgque.subscription, c pgque.subscription) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    IF c.sub_id IS NULL THEN
        RETURN pgque._finish_batch(s);
    END IF;
    PERFORM pgque._finish_batch(c);
    RETURN pgque._clear_batch(s);
END
$$;

-- receive(queue_name, consumer_name, max_return [, worker_name [, lease]]):
-- up to max_return messages of the consumer's open (or next) batch, in
-- delivery order, after its acknowledged position; none when nothing new
-- was ticked.  They are handed out as one piece: their batch_id is the
-- piece's id, which ack() and nack() take.  Called again before an ack,
-- it hands out the same messages again (a new piece).  Empty batches are
-- finished on the way.  Nothing is handed out while the queue is paused
-- (an open batch then stays open, and after resume_queue() continues after
-- the acked position).  With worker_name, the caller is that cooperative
-- worker of the consumer (16_workers.sql): it gets a batch of its own,
-- which is its for lease (default 30 seconds) from now, renewed by each
-- receive and by heartbeat(); without one, on a consumer that workers
-- read, the call is served as the worker '_plain' with that lease.
-- Errors: PQ001, PQ003, PQ006 (max_return NULL or below 1, bad worker name,
-- lease not in (0, 1 day]; NULL means 30 seconds), PQ025 (a worker asked
-- while a plain reader is reading the consumer's own batch).
CREATE FUNCTION pgque.receive(queue_name text, consumer_name text, max_return int DEFAULT 100,
                              worker_name text DEFAULT NULL, lease interval DEFAULT '30 seconds')
RETURNS SETOF pgque.message
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp
                 SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
                 SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
    s pgque.subscription := pgque._receiver(queue_name, consumer_name, max_return, worker_name, lease);
    c pgque.subscription;
    h record;
    ctx pgque._batch_ctx;
    n bigint;
BEGIN
    LOOP
        SELECT * INTO h FROM pgque._window(s);
        s := h.s;
        c := h.c;
        IF s.sub_batch IS NULL THEN
            RETURN;
        END IF;
        ctx := pgque._batch_ctx(s);
        s.sub_piece := nextval('pgque.batch_id_seq');
        -- One statement reads the piece, hands it out and saves how far it
        -- went, so each row is read once and none passes through PL/pgSQL
        -- on its own (measured: a third less time per row than a loop, and
        -- less than reading the positions first).  r holds one row more
        -- than asked, which tells whether the batch ends here; x is the
        -- last row handed out and the one after it, read in one pass of r.
        -- The rows come out of the CTE in r's order, so they need no sort.
        RETURN QUERY EXECUTE
               'WITH r AS (' || pgque._batch_sql(ctx, '', 'ORDER BY ev_txid, ev_id LIMIT $2') || '),'
            || ' x AS (SELECT ev_txid, ev_id FROM r OFFSET $5 - 1 LIMIT 2),'
            || ' saved AS (SELECT pgque._save_piece($3, $6, x.n = 2, x.t[1], x.i[1])'
            || '   FROM (SELECT count(*) AS n, array_agg(ev_txid) AS t, array_agg(ev_id) AS i FROM x) x'
            || '  WHERE EXISTS (SELECT FROM r))'
            || ' SELECT r.ev_id, $4, r.ev_type, r.ev_data, r.ev_retry, r.ev_time,'
            || '        r.ev_extra1, r.ev_extra2, r.ev_extra3, r.ev_extra4'
            || '   FROM saved, r LIMIT $5'
            USING ctx, max_return::bigint + 1, s, s.sub_piece, max_return, c;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            RETURN;
        END IF;
        -- Nothing left after the acked position: the batch is complete.
        s := pgque._no_rows_left(s, c);
    END LOOP;
END
$$;

-- receive_query(queue_name, consumer_name, max_return [, worker_name [,
-- lease]]): receive() for a client that reads the rows itself, straight
-- from the event tables: the same piece is handed out (batch_id is its
-- id), and query reads it.
-- A client runs query with $1 = ctx (text), $2 = batch_id and $3 =
-- max_return, in a transaction that has seqscan, bitmapscan, sort and
-- parallel workers off (set_config(..., true)), as receive() has; its rows
-- are pgque.message rows in delivery order.  Ack them as receive()'s.
-- Why: a set-returning PL/pgSQL function holds its rows before sending
-- them, which costs more than reading them (docs/benchmarks.md); a plain
-- SELECT streams them.  It needs SELECT on the event tables, which
-- pgque_reader has: direct is false (and nothing is handed out) when the
-- session's login role lacks it; call receive() then.  batch_id is NULL
-- when there is nothing to hand out.
-- Errors: as receive().
CREATE FUNCTION pgque.receive_query(queue_name text, consumer_name text, max_return int DEFAULT 100,
                                    worker_name text DEFAULT NULL, lease interval DEFAULT '30 seconds',
                                    OUT direct boolean, OUT batch_id bigint, OUT query text, OUT ctx text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp
                 SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
                 SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
    s pgque.subscription := pgque._receiver(queue_name, consumer_name, max_return, worker_name, lease);
    w pgque.subscription;
    h record;
    c pgque._batch_ctx;
    e record;
BEGIN
    direct := has_table_privilege(session_user, pgque._event_table(s.sub_queue, 0), 'SELECT');
    IF NOT direct THEN
        RETURN;
    END IF;
    LOOP
        SELECT * INTO h FROM pgque._window(s);
        s := h.s;
        w := h.c;
        IF s.sub_batch IS NULL THEN
            RETURN;
        END IF;
        c := pgque._batch_ctx(s);
        s.sub_piece := nextval('pgque.batch_id_seq');
        SELECT * INTO e FROM pgque._piece_end(c, max_return);
        IF e.n > 0 OR EXISTS (SELECT FROM pgque._batch_rows(s, false, '', 'LIMIT 1', NULL, NULL, NULL)) THEN
            PERFORM pgque._save_piece(s, w, e.n = 2, e.end_txid, e.end_id);
            EXIT;
        END IF;
        s := pgque._no_rows_left(s, w);
    END LOOP;
    batch_id := s.sub_piece;
    ctx := c::text;
    query := 'SELECT r.ev_id AS msg_id, $2::pg_catalog.int8 AS batch_id, r.ev_type AS type, r.ev_data AS payload,'
          || '       r.ev_retry AS retry_count, r.ev_time AS created_at, r.ev_extra1 AS extra1,'
          || '       r.ev_extra2 AS extra2, r.ev_extra3 AS extra3, r.ev_extra4 AS extra4'
          || '  FROM (' || pgque._batch_sql(c, '', 'ORDER BY ev_txid, ev_id LIMIT $3', '*', '($1::pgque._batch_ctx)')
          || ') r';
END
$$;

-- ack(batch_id): acknowledge the piece receive() handed out as batch_id:
-- the consumer's acknowledged position moves to the piece's end (never
-- past what this piece held, whatever other callers were handed since).
-- When the piece reached the end of its batch, the batch is finished;
-- otherwise it stays open and the next receive() continues after it.
-- Returns 1 when something was acknowledged; 0 when the piece is unknown,
-- or everything in it was acknowledged already (by an earlier ack of it, or
-- of a later piece that held the same messages), or its batch was finished.
-- Errors: PQ006 (NULL id), PQ027 (a batch id: ack takes piece ids), PQ028
-- (its batch was taken over by another worker: nothing is acknowledged).
CREATE FUNCTION pgque.ack(batch_id bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    p record;
    s pgque.subscription;
BEGIN
    SELECT * INTO p FROM pgque._piece(batch_id);
    s := p.s;
    IF p.taken THEN
        PERFORM pgque._taken_over(batch_id);
    ELSIF s.sub_id IS NULL OR (p.end_txid, p.end_id) <= (coalesce(s.sub_ack_txid, s.sub_start_txid, '0'),
                                                        coalesce(s.sub_ack_id, s.sub_start_id, 0)) THEN
        RETURN 0;
    END IF;
    IF p.done THEN
        PERFORM pgque._finish_batch(s);
    ELSE
        s.sub_ack_txid := p.end_txid;
        s.sub_ack_id := p.end_id;
        PERFORM pgque._save(s);
    END IF;
    RETURN 1;
END
$$;

-- _piece_message(batch_id, msg_id): the subscription that holds the open
-- piece batch_id and its unacknowledged message msg_id, for the calls that
-- settle one message (nack, snooze, reject); cancelled when cancel() took
-- the message back (21_jobs.sql; e is NULL then).
-- Errors: PQ004 the piece's batch is not open, PQ005 msg_id is not in the
-- piece (or was already acked), PQ006 NULL msg_id, PQ027 a batch id,
-- PQ028 its batch was taken over by another worker.
CREATE FUNCTION pgque._piece_message(batch_id bigint, msg_id bigint, OUT s pgque.subscription, OUT e pgque.event,
                                     OUT cancelled boolean)
LANGUAGE plpgsql AS $$
DECLARE
    p record;
BEGIN
    IF msg_id IS NULL THEN
        PERFORM pgque._invalid('msg_id', 'must not be NULL');
    END IF;
    SELECT * INTO p FROM pgque._piece(batch_id);
    s := p.s;
    IF p.taken THEN
        PERFORM pgque._taken_over(batch_id);
    ELSIF s.sub_id IS NULL THEN
        PERFORM pgque._batch_not_found(batch_id);
    END IF;
    SELECT * INTO e FROM pgque._batch_rows(s, false, 'AND ev_id = $3 AND ev_txid <= $4', '',
                                           NULL, msg_id, p.end_txid) r
     WHERE (r.ev_txid, r.ev_id) <= (p.end_txid, p.end_id);
    cancelled := e.ev_id IS NULL AND pgque._cancelled(s.sub_queue, coalesce(s.sub_parent, s.sub_id), msg_id);
    IF e.ev_id IS NULL AND NOT cancelled THEN
        RAISE EXCEPTION 'pgque: message % is not an unacknowledged message of batch %', msg_id, batch_id
            USING ERRCODE = 'PQ005';
    END IF;
END
$$;

-- nack(batch_id, msg_id, retry_after, reason): this message of the piece
-- batch_id failed.  It is retried for this consumer only, after
-- retry_after (default: the queue's exponential backoff), or
-- dead-lettered with reason once it was already retried max_retries times.
-- The piece must still be acked.  A message already settled in the piece
-- (nacked, snoozed or rejected: queued for retry or dead-lettered) is left
-- as it is, so repeating a nack changes nothing and returns the same answer.
-- Returns 'retry' or 'dead', or 'cancelled' when cancel() took the message
-- back (21_jobs.sql): nothing is retried or dead-lettered then.
-- Errors: PQ004 the piece's batch is not open (unknown, or finished),
-- PQ005 msg_id is not in the piece (or was already acked), PQ006 NULL
-- msg_id, retry_after negative or more than 100 years, PQ027 a batch id,
-- PQ028 its batch was taken over by another worker.
CREATE FUNCTION pgque.nack(batch_id bigint, msg_id bigint, retry_after interval DEFAULT NULL,
                           reason text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    m record;
BEGIN
    IF retry_after IS NOT NULL THEN
        PERFORM pgque._check_interval('retry_after', retry_after, interval '0', pgque._max_span());
    END IF;
    m := pgque._to_settle(batch_id, msg_id);  -- 20_outcomes.sql
    RETURN coalesce(m.was, pgque._retry_or_dead(m.owner, m.e, retry_after, reason));
END
$$;
