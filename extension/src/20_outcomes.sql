-- Settling one message of a piece other than by failing it (nack,
-- 07_consume.sql): putting it off, giving up on it, and cancelling it.  Like nack, each
-- works on a message handed out and not yet acknowledged, leaves the event
-- tables alone (the stores are the retry queue and the dead letters), and
-- needs the piece to be acked afterwards.  A message is settled once: when
-- it is already queued for retry or dead-lettered for this consumer, these
-- change nothing and say which.

-- _settled_as(s, ev_id): 'retry' or 'dead' when event ev_id is already
-- settled that way for s (its owning consumer), else NULL.
CREATE FUNCTION pgque._settled_as(s pgque.subscription, ev_id bigint) RETURNS text
LANGUAGE sql STABLE AS $$
    SELECT CASE
        WHEN EXISTS (SELECT 1 FROM pgque.retry_queue r WHERE r.rq_sub = s.sub_id AND r.ev_id = _settled_as.ev_id)
            THEN 'retry'
        WHEN EXISTS (SELECT 1 FROM pgque.dead_letter d
                      WHERE d.dl_queue = s.sub_queue AND d.dl_consumer = s.sub_consumer AND d.ev_id = _settled_as.ev_id)
            THEN 'dead'
    END
$$;

-- _to_settle(batch_id, msg_id): for the calls that settle a message of a
-- piece: the consumer that owns its retries and dead letters, the event,
-- and how it was settled already (NULL: not yet; 'cancelled' when
-- cancel() took it back, which leaves nothing to do).  Errors: those of
-- _piece_message.
CREATE FUNCTION pgque._to_settle(batch_id bigint, msg_id bigint,
                                 OUT owner pgque.subscription, OUT e pgque.event, OUT was text)
LANGUAGE plpgsql AS $$
DECLARE
    m record := pgque._piece_message(batch_id, msg_id);
BEGIN
    owner := pgque._owner(m.s);
    e := m.e;
    was := CASE WHEN m.cancelled THEN 'cancelled' ELSE pgque._settled_as(owner, msg_id) END;
END
$$;

-- snooze(batch_id, msg_id, delay): deliver this message of the piece
-- batch_id again, to this consumer only, after delay, without counting a
-- failed attempt: its retry_count stays as it is (NULL when it never
-- failed) and it is never dead-lettered for it.
-- Returns 'snoozed', or 'retry' / 'dead' when the message was already
-- settled so, 'cancelled' when cancel() took it back (nothing changes).
-- Errors: PQ004 the piece's batch is not open, PQ005 msg_id is not in the
-- piece (or was already acked), PQ006 NULL msg_id or delay, delay negative
-- or more than 100 years, PQ027 a batch id, PQ028 its batch was taken over
-- by another worker.
CREATE FUNCTION pgque.snooze(batch_id bigint, msg_id bigint, delay interval) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    m record;
BEGIN
    PERFORM pgque._check_interval('delay', delay, interval '0', pgque._max_span());
    m := pgque._to_settle(batch_id, msg_id);
    IF m.was IS NULL THEN
        PERFORM pgque._retry_insert(m.owner, m.e, now() + delay, false);
    END IF;
    RETURN coalesce(m.was, 'snoozed');
END
$$;

-- reject(batch_id, msg_id, reason): put this message of the piece
-- batch_id in the dead letters of this consumer now, with reason, however
-- many retries it has left (a message that can never succeed).
-- Returns 'dead', or 'retry' when it was already queued for retry,
-- 'cancelled' when cancel() took it back (nothing changes).
-- Errors: PQ004 the piece's batch is not open, PQ005 msg_id is not in the
-- piece (or was already acked), PQ006 NULL msg_id, PQ027 a batch id,
-- PQ028 its batch was taken over by another worker.
CREATE FUNCTION pgque.reject(batch_id bigint, msg_id bigint, reason text DEFAULT NULL) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    m record := pgque._to_settle(batch_id, msg_id);
BEGIN
    IF m.was IS NULL THEN
        PERFORM pgque._dead_letter(m.owner, m.e, reason);
    END IF;
    RETURN coalesce(m.was, 'dead');
END
$$;

-- cancel_message(batch_id, msg_id): this message of the piece batch_id is
-- not to be done at all (the order it was for was withdrawn, say): it is
-- cancelled for this consumer, as cancel() would, without a retry or a
-- dead letter; message_status says 'cancelled'.  The piece must still be
-- acked.  Where cancel() is the producer's side, this is the handler's.
-- Returns 'cancelled', or 'retry' / 'dead' when the message was already
-- settled so (nothing changes).
-- Errors: PQ004 the piece's batch is not open, PQ005 msg_id is not in the
-- piece (or was already acked), PQ006 NULL msg_id, PQ027 a batch id,
-- PQ028 its batch was taken over by another worker.
CREATE FUNCTION pgque.cancel_message(batch_id bigint, msg_id bigint) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    m record := pgque._to_settle(batch_id, msg_id);
BEGIN
    IF m.was IS NULL THEN
        -- Not held (heartbeat() has nothing to tell the worker that
        -- decided it); its txid keeps it from a worker taking the piece over.
        PERFORM pgque._record_cancel(q, msg_id, (m.owner).sub_id, false, ARRAY[(m.e).ev_txid])
           FROM pgque.queue q WHERE q.queue_id = (m.owner).sub_queue;
    END IF;
    RETURN coalesce(m.was, 'cancelled');
END
$$;
