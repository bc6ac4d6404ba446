-- The modern consumer API: receive, ack, nack.
--
-- receive() hands out a batch in pieces: each call returns up to max rows
-- after the acknowledged position; ack() moves that position to the end of
-- what was handed out, and finishes the batch once everything was.  Rows handed
-- out but not acked come again on the next receive (a crashed consumer loses
-- nothing), and nothing is ever skipped, whatever max is.

-- _save_sent(s, txid, id): save s with its open batch handed out up to the
-- row (txid, id), or, with NULLs, to its end: the saved position is then past
-- every row of the batch (each row's ev_txid is below the end tick's xmax),
-- and the batch done.
CREATE FUNCTION pgque._save_sent(s pgque.subscription, txid xid8, id bigint)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    s.sub_done := txid IS NULL;
    s.sub_sent_txid := coalesce(txid, pg_snapshot_xmax(s.sub_next_snapshot));
    s.sub_sent_id := coalesce(id, 9223372036854775807);
    RETURN pgque._save(s);  -- opens the batch too, when it is new
END
$$;

-- _receiver(queue_name, consumer_name, max_return, worker_name, lease): the
-- consumer a receive call reads for, locked: the consumer itself, or its
-- cooperative worker worker_name (16_workers.sql).  Errors: as receive().
CREATE FUNCTION pgque._receiver(queue_name text, consumer_name text, max_return int,
                                worker_name text, lease interval) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    PERFORM pgque._check_positive('max_return', max_return);
    IF worker_name IS NULL THEN
        RETURN pgque._subscription(queue_name, consumer_name, true);
    END IF;
    RETURN pgque._worker(queue_name, consumer_name, worker_name, lease);
END
$$;

-- _window(s, max_return): s with the batch to hand out from: its open one,
-- or the next (a worker's is sized to about max_return events); a NULL
-- sub_batch when there is none.
CREATE FUNCTION pgque._window(s pgque.subscription, max_return int) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    IF s.sub_parent IS NULL THEN
        RETURN pgque._batch_window(s);
    END IF;
    RETURN pgque._worker_window(s, max_return);
END
$$;

-- receive(queue_name, consumer_name, max_return [, worker_name [, lease]]):
-- up to max_return messages of the consumer's open (or next) batch, in
-- delivery order; none when nothing new was ticked.  Empty batches are
-- finished on the way.  Nothing is handed out while the queue is paused (an
-- open batch then stays open, and after resume_queue() continues after the
-- acked position).  With worker_name, the caller is that cooperative
-- worker of the consumer (16_workers.sql): it gets a batch of its own, which
-- is its for lease (default 30 seconds) from now, renewed by each receive and
-- by heartbeat().
-- Errors: PQ001, PQ003, PQ006 (max_return not positive, bad worker name or
-- lease), PQ025 (the consumer's batches are being read the other way).
CREATE FUNCTION pgque.receive(queue_name text, consumer_name text, max_return int DEFAULT 100,
                              worker_name text DEFAULT NULL, lease interval DEFAULT '30 seconds')
RETURNS SETOF pgque.message
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp
                 SET enable_bitmapscan = off SET enable_seqscan = off SET enable_sort = off
                 SET max_parallel_workers_per_gather = 0 SET jit = off AS $$
DECLARE
    s pgque.subscription := pgque._receiver(queue_name, consumer_name, max_return, worker_name, lease);
    ctx pgque._batch_ctx;
    n bigint;
BEGIN
    LOOP
        s := pgque._window(s, max_return);
        IF s.sub_batch IS NULL THEN
            RETURN;
        END IF;
        ctx := pgque._batch_ctx(s);
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
            || ' saved AS (SELECT CASE WHEN x.n = 2 THEN pgque._save_sent($3, x.t[1], x.i[1])'
            || '                       ELSE pgque._save_sent($3, NULL, NULL) END'
            || '   FROM (SELECT count(*) AS n, array_agg(ev_txid) AS t, array_agg(ev_id) AS i FROM x) x'
            || '  WHERE EXISTS (SELECT FROM r))'
            || ' SELECT r.ev_id, $4, r.ev_type, r.ev_data, r.ev_retry, r.ev_time,'
            || '        r.ev_extra1, r.ev_extra2, r.ev_extra3, r.ev_extra4'
            || '   FROM saved, r LIMIT $5'
            USING ctx, max_return::bigint + 1, s, s.sub_batch, max_return;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            RETURN;
        END IF;
        -- Nothing left after the acked position: the batch is complete.
        s := pgque._finish_batch(s);
    END LOOP;
END
$$;

-- receive_query(queue_name, consumer_name, max_return [, worker_name [,
-- lease]]): receive() for a client that reads the rows itself, straight
-- from the event tables: the same piece is handed out, and query reads it.
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
    c pgque._batch_ctx;
    n bigint;
    last_txid xid8;
    last_id bigint;
BEGIN
    direct := has_table_privilege(session_user, pgque._event_table(s.sub_queue, 0), 'SELECT');
    IF NOT direct THEN
        RETURN;
    END IF;
    LOOP
        s := pgque._window(s, max_return);
        IF s.sub_batch IS NULL THEN
            RETURN;
        END IF;
        c := pgque._batch_ctx(s);
        -- The piece's last row and the one after it, as in receive().
        EXECUTE 'SELECT count(*), (array_agg(ev_txid))[1], (array_agg(ev_id))[1] FROM (SELECT * FROM ('
             || pgque._batch_sql(c, '', 'ORDER BY ev_txid, ev_id LIMIT $2 + 1', 'ev_txid, ev_id')
             || ') p OFFSET $2 - 1) p'
           INTO n, last_txid, last_id USING c, max_return::bigint;
        IF n = 2 THEN
            PERFORM pgque._save_sent(s, last_txid, last_id);
            EXIT;
        END IF;
        IF n = 1 OR EXISTS (SELECT FROM pgque._batch_rows(s, false, '', 'LIMIT 1', NULL, NULL, NULL)) THEN
            PERFORM pgque._save_sent(s, NULL, NULL);
            EXIT;
        END IF;
        s := pgque._finish_batch(s);
    END LOOP;
    batch_id := s.sub_batch;
    ctx := c::text;
    query := 'SELECT r.ev_id AS msg_id, $2::bigint AS batch_id, r.ev_type AS type, r.ev_data AS payload,'
          || '       r.ev_retry AS retry_count, r.ev_time AS created_at, r.ev_extra1 AS extra1,'
          || '       r.ev_extra2 AS extra2, r.ev_extra3 AS extra3, r.ev_extra4 AS extra4'
          || '  FROM (' || pgque._batch_sql(c, '', 'ORDER BY ev_txid, ev_id LIMIT $3', '*', '($1::pgque._batch_ctx)')
          || ') r';
END
$$;

-- ack(batch_id): acknowledge what receive() handed out of the batch.  When
-- that was the rest of the batch, the batch is finished; otherwise it stays
-- open and the next receive() continues after it.
-- Returns 1 when something was acknowledged, 0 when the batch is unknown,
-- already finished, or nothing new was handed out since the last ack.
-- Errors: PQ006 (NULL batch id).
CREATE FUNCTION pgque.ack(batch_id bigint) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s pgque.subscription := pgque._batch_sub(batch_id);
BEGIN
    IF s.sub_id IS NULL OR s.sub_sent_id IS NULL
       OR (s.sub_sent_txid, s.sub_sent_id) IS NOT DISTINCT FROM (s.sub_ack_txid, s.sub_ack_id) THEN
        RETURN 0;
    END IF;
    IF s.sub_done THEN
        PERFORM pgque._finish_batch(s);
    ELSE
        s.sub_ack_txid := s.sub_sent_txid;
        s.sub_ack_id := s.sub_sent_id;
        PERFORM pgque._save(s);
    END IF;
    RETURN 1;
END
$$;

-- nack(batch_id, msg_id, retry_after, reason): this message failed.  It is
-- retried for this consumer only, after retry_after (default: the queue's
-- exponential backoff), or dead-lettered with reason once it was already
-- retried max_retries times.  The batch must still be acked.  Repeating a
-- nack changes nothing and returns the same answer.
-- Returns 'retry' or 'dead'.
-- Errors: PQ004 batch not open, PQ005 msg_id was not handed out in this batch
-- (or was already acked), PQ006 NULL msg_id or negative retry_after.
CREATE FUNCTION pgque.nack(batch_id bigint, msg_id bigint, retry_after interval DEFAULT NULL,
                           reason text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s pgque.subscription := pgque._batch_sub(batch_id);
    e pgque.event;
BEGIN
    IF msg_id IS NULL THEN
        PERFORM pgque._invalid('msg_id', 'must not be NULL');
    ELSIF retry_after < interval '0' THEN
        PERFORM pgque._invalid('retry_after', format('%s is negative', retry_after));
    ELSIF s.sub_id IS NULL THEN
        PERFORM pgque._batch_not_found(batch_id);
    END IF;
    IF s.sub_sent_id IS NOT NULL THEN
        SELECT * INTO e FROM pgque._batch_rows(s, false, 'AND ev_id = $3 AND ev_txid <= $4', '',
                                               NULL, msg_id, s.sub_sent_txid) r
         WHERE (r.ev_txid, r.ev_id) <= (s.sub_sent_txid, s.sub_sent_id);
    END IF;
    IF e.ev_id IS NULL THEN
        RAISE EXCEPTION 'pgque: message % is not an unacknowledged message of batch %', msg_id, batch_id
            USING ERRCODE = 'PQ005';
    END IF;
    RETURN pgque._retry_or_dead(pgque._owner(s), e, retry_after, reason);
END
$$;
