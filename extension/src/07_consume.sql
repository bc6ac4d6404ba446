-- The modern consumer API: receive, ack, nack.
--
-- receive() hands out a batch in pieces: each call returns up to max rows
-- after the acknowledged position; ack() moves that position to the end of
-- what was handed out, and finishes the batch once everything was.  Rows handed
-- out but not acked come again on the next receive (a crashed consumer loses
-- nothing), and nothing is ever skipped, whatever max is.

-- _save_sent(s, txid, id, done): save s with its open batch handed out up
-- to the row (txid, id); done says that row is the batch's last.
CREATE FUNCTION pgque._save_sent(s pgque.subscription, txid xid8, id bigint, done boolean)
RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
BEGIN
    s.sub_sent_txid := txid;
    s.sub_sent_id := id;
    s.sub_done := done;
    RETURN pgque._save(s);  -- opens the batch too, when it is new
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
    s pgque.subscription;
    ctx pgque._batch_ctx;
    n bigint;
BEGIN
    PERFORM pgque._authorize(queue_name, 'receive');
    PERFORM pgque._check_positive('max_return', max_return);
    IF worker_name IS NULL THEN
        s := pgque._subscription(queue_name, consumer_name, true);
    ELSE
        s := pgque._worker(queue_name, consumer_name, worker_name, lease);
    END IF;
    LOOP
        IF s.sub_parent IS NULL THEN
            s := pgque._batch_window(s);
        ELSE
            s := pgque._worker_window(s, max_return);
        END IF;
        IF s.sub_batch IS NULL THEN
            RETURN;
        END IF;
        ctx := pgque._batch_ctx(s);
        -- One statement reads the piece, hands it out and saves how far it
        -- went, so each row is read once and none passes through PL/pgSQL
        -- on its own (measured: a third less time per row than a loop, and
        -- less than reading the positions first).  r holds one row more
        -- than asked, which tells whether the batch ends here; the rows come
        -- out of the CTE in r's order, so they need no sort.
        RETURN QUERY EXECUTE
               'WITH r AS (' || pgque._batch_sql(ctx, '', 'ORDER BY ev_txid, ev_id LIMIT $2') || '),'
            || ' n AS (SELECT count(*) AS n FROM r),'
            || ' saved AS (SELECT pgque._save_sent($3, l.ev_txid, l.ev_id, n.n < $2) AS s'
            || '   FROM n, LATERAL (SELECT ev_txid, ev_id FROM r OFFSET greatest(least(n.n, $5) - 1, 0) LIMIT 1) l)'
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
