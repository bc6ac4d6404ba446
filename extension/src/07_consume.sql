-- The modern consumer API: receive, ack, nack.
--
-- receive() hands out a batch in pieces: each call returns up to max rows
-- after the acknowledged position; ack() moves that position to the end of
-- what was handed out, and finishes the batch once everything was.  Rows handed
-- out but not acked come again on the next receive (a crashed consumer loses
-- nothing), and nothing is ever skipped, whatever max is.

-- receive(queue_name, consumer_name, max_return): up to max_return messages
-- of the consumer's open (or next) batch, in delivery order; none when
-- nothing new was ticked, or while the queue is paused (an open batch then
-- stays open, and resume_queue() lets it continue after the acked position).
-- Empty batches are finished on the way.
-- Errors: PQ001, PQ003, PQ006 (max_return not positive).
CREATE FUNCTION pgque.receive(queue_name text, consumer_name text, max_return int DEFAULT 100)
RETURNS SETOF pgque.message
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    s    pgque.subscription;
    e    pgque.event;
    last pgque.event;
    n    int;
BEGIN
    PERFORM pgque._check_positive('max_return', max_return);
    s := pgque._subscription(queue_name, consumer_name, true);
    LOOP
        s := pgque._batch_window(s);
        IF s.sub_batch IS NULL THEN
            RETURN;
        END IF;
        n := 0;
        -- One row more than asked tells whether the batch ends here.
        FOR e IN SELECT * FROM pgque._batch_rows(s, 'AND (ev_txid, ev_id) > ($6, $7)',
                     'ORDER BY ev_txid, ev_id LIMIT $8', s.sub_ack_txid, s.sub_ack_id,
                     max_return + 1, NULL, NULL)
        LOOP
            n := n + 1;
            EXIT WHEN n > max_return;
            last := e;
            RETURN NEXT ROW(e.ev_id, s.sub_batch, e.ev_type, e.ev_data, e.ev_retry, e.ev_time,
                            e.ev_extra1, e.ev_extra2, e.ev_extra3, e.ev_extra4)::pgque.message;
        END LOOP;
        IF n > 0 THEN
            s.sub_sent_txid := last.ev_txid;
            s.sub_sent_id := last.ev_id;
            s.sub_done := (n <= max_return);
            PERFORM pgque._save(s);  -- opens the batch too, in the same UPDATE
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
        SELECT * INTO e FROM pgque._batch_rows(s, 'AND ev_id = $9 AND ev_txid <= $10 AND (ev_txid, ev_id) > ($6, $7)',
                                               '', s.sub_ack_txid, s.sub_ack_id, NULL, msg_id, s.sub_sent_txid) r
         WHERE (r.ev_txid, r.ev_id) <= (s.sub_sent_txid, s.sub_sent_id);
    END IF;
    IF e.ev_id IS NULL THEN
        RAISE EXCEPTION 'pgque: message % is not an unacknowledged message of batch %', msg_id, batch_id
            USING ERRCODE = 'PQ005';
    END IF;
    RETURN pgque._retry_or_dead(s, e, retry_after, reason);
END
$$;
