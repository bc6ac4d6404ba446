-- Producing: send, send_batch, and PgQ's insert_event.  Events are INSERTed
-- into the queue's current event table in the caller's transaction, so they
-- exist only if it commits.  No lock is taken on the queue row.

-- _writable(queue_name): where an event written now must go.
-- Order matters for rotation safety (proof in 10_maint.sql): the caller's xid
-- is assigned first, the generation is read after, from a sequence that no
-- MVCC snapshot can hide.  The shared advisory lock, held to commit, makes
-- drop_queue wait for in-flight producers.  Errors: PQ001, PQ006.
CREATE FUNCTION pgque._writable(queue_name text, OUT queue_id int, OUT tbl text, OUT event_seq regclass)
LANGUAGE plpgsql AS $$
DECLARE
    q record;
BEGIN
    PERFORM pg_current_xact_id();
    SELECT x.queue_id, x.queue_ntables, x.queue_gen_seq, x.queue_event_seq INTO q
      FROM pgque.queue x WHERE x.queue_name = _writable.queue_name;
    IF NOT FOUND THEN
        PERFORM pgque._queue(queue_name);  -- raises
    END IF;
    PERFORM pg_advisory_xact_lock_shared(pgque._lock_ns() + 1, q.queue_id);
    -- Catalog lookups are never stale, unlike the row we read above.
    IF to_regclass(format('pgque.event_%s_gen', q.queue_id)) IS NULL THEN
        RAISE EXCEPTION 'pgque: queue % does not exist', quote_literal(queue_name) USING ERRCODE = 'PQ001';
    END IF;
    queue_id := q.queue_id;
    tbl := pgque._event_table(q.queue_id, pgque._seq_value(q.queue_gen_seq) % q.queue_ntables);
    event_seq := q.queue_event_seq;
END
$$;

-- send(queue_name, type, payload [, extra1 .. extra4]): enqueue one event.
-- payload is text (stored as is) or jsonb; type must not be NULL.
-- Returns the event id.  Errors: PQ001 unknown queue, PQ006 bad argument.
CREATE FUNCTION pgque.send(queue_name text, type text, payload text,
                           extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                           extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    w  record;
    id bigint;
BEGIN
    IF type IS NULL THEN
        PERFORM pgque._invalid('event type', 'must not be NULL');
    END IF;
    w := pgque._writable(queue_name);
    EXECUTE format('INSERT INTO %s (ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)'
                   ' VALUES ($1, $2, $3, $4, $5, $6) RETURNING ev_id', w.tbl)
       INTO id USING type, payload, extra1, extra2, extra3, extra4;
    RETURN id;
END
$$;

CREATE FUNCTION pgque.send(queue_name text, type text, payload jsonb,
                           extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                           extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send(queue_name, type, payload::text, extra1, extra2, extra3, extra4)
$$;

-- send_batch(queue_name, type, payloads[]): enqueue many events of one type
-- with a single INSERT.  Returns their ids in the order of payloads (an empty
-- array for an empty one).  Errors: PQ001, PQ006 (NULL or multi-dimensional array).
CREATE FUNCTION pgque.send_batch(queue_name text, type text, payloads text[]) RETURNS bigint[]
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    w   record;
    ids bigint[];
BEGIN
    IF type IS NULL THEN
        PERFORM pgque._invalid('event type', 'must not be NULL');
    ELSIF payloads IS NULL THEN
        PERFORM pgque._invalid('payloads', 'must not be NULL');
    ELSIF array_ndims(payloads) > 1 THEN
        PERFORM pgque._invalid('payloads', 'must be a one-dimensional array');
    END IF;
    w := pgque._writable(queue_name);
    IF cardinality(payloads) = 0 THEN
        RETURN '{}';
    END IF;
    -- Ids are drawn first so that ids[i] belongs to payloads[i] by construction.
    ids := ARRAY(SELECT nextval(w.event_seq) FROM generate_series(1, cardinality(payloads)));
    EXECUTE format('INSERT INTO %s (ev_id, ev_type, ev_data)'
                   ' SELECT i, $1, p FROM unnest($2::bigint[], $3::text[]) AS u(i, p)', w.tbl)
      USING type, ids, payloads;
    RETURN ids;
END
$$;

CREATE FUNCTION pgque.send_batch(queue_name text, type text, payloads jsonb[]) RETURNS bigint[]
LANGUAGE sql AS $$
    SELECT pgque.send_batch(queue_name, type, payloads::text[])
$$;

-- insert_event(queue_name, ev_type, ev_data [, ev_extra1 .. ev_extra4]):
-- PgQ's name for send().  Returns the event id.
CREATE FUNCTION pgque.insert_event(queue_name text, ev_type text, ev_data text,
                                   ev_extra1 text DEFAULT NULL, ev_extra2 text DEFAULT NULL,
                                   ev_extra3 text DEFAULT NULL, ev_extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send(queue_name, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
$$;
