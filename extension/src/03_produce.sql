-- Producing: send, send_batch, and PgQ's insert_event.  Events are INSERTed
-- into the queue's current event table in the caller's transaction, so they
-- exist only if it commits.  No lock is taken on the queue row, and the
-- INSERT goes to the partitioned parent with static SQL, so its plan is
-- cached instead of being planned on every call.

-- _writable(queue_name): where an event written now must go: the queue,
-- its event sequence, the ev_slot of its current table, and its group's
-- send hint and seen mark.  Every writer of events draws from the hint
-- after it drew its event ids (04_ticker.sql, "Hints"), so that the ticker
-- looks at the queue, and wakes the ticker (_wake).
-- Order matters for rotation safety (proof in 10_maint.sql): the caller's xid
-- is assigned first, the generation is read after, from a sequence that no
-- MVCC snapshot can hide.  A producer racing drop_queue fails (at the latest
-- when it draws from the dropped event sequence) or writes into an emptied
-- table that the next create_queue truncates again.  Errors: PQ001, PQ006.
CREATE FUNCTION pgque._writable(queue_name text, OUT queue_id int, OUT slot int, OUT event_seq regclass,
                                 OUT hint regclass, OUT seen regclass)
LANGUAGE plpgsql AS $$
DECLARE
    q record;
BEGIN
    PERFORM pg_current_xact_id();
    SELECT x.queue_id, x.queue_slot, x.queue_ntables, x.queue_gen_seq, x.queue_event_seq, x.queue_hint_seq,
           x.queue_seen_seq INTO q
      FROM pgque.queue x WHERE x.queue_name = _writable.queue_name;
    IF NOT FOUND THEN
        PERFORM pgque._queue(queue_name);  -- raises
    END IF;
    queue_id := q.queue_id;
    slot := q.queue_slot + pg_sequence_last_value(q.queue_gen_seq) % q.queue_ntables;
    event_seq := q.queue_event_seq;
    hint := q.queue_hint_seq;
    seen := q.queue_seen_seq;
END
$$;

-- _wake(h, seen): after a writer drew h from its group's hint: when h is
-- the first draw since the ticker marked the group seen, NOTIFY channel
-- 'pgque:wake' (delivered when the writer commits), so that a ticker that
-- polls slowly while nothing happens (the Go Ticker) ticks at once.  Only
-- that first write into a quiet group notifies: a NOTIFY in every send
-- would serialize committing producers on PostgreSQL's notification queue
-- (docs/benchmarks.md).  A write that races the ticker's mark may miss it;
-- the ticker's polling finds its group then.  send() has it inline.
CREATE FUNCTION pgque._wake(h bigint, seen regclass) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF h = pgque._seq_value(seen) + 1 THEN
        PERFORM pg_notify('pgque:wake', '');
    END IF;
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
    h  bigint;
BEGIN
    PERFORM pgque._authorize(queue_name, 'send');
    IF type IS NULL THEN
        PERFORM pgque._invalid('event type', 'must not be NULL');
    END IF;
    w := pgque._writable(queue_name);
    INSERT INTO pgque.event (ev_slot, ev_id, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
    VALUES (w.slot, nextval(w.event_seq), type, payload, extra1, extra2, extra3, extra4)
    RETURNING ev_id, nextval(w.hint) INTO id, h;  -- RETURNING runs after the id was drawn
    IF h = pgque._seq_value(w.seen) + 1 THEN  -- _wake
        PERFORM pg_notify('pgque:wake', '');
    END IF;
    RETURN id;
END
$$;

-- The jsonb forms (here and in the files of send_opts' other forms) are SQL
-- functions, inlined into the caller's query and so parsed under the
-- caller's search_path: every name in them is schema-qualified (see
-- 99_security.sql).
CREATE FUNCTION pgque.send(queue_name text, type text, payload jsonb,
                           extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                           extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send(queue_name, type, payload::pg_catalog.text, extra1, extra2, extra3, extra4)
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
    PERFORM pgque._authorize(queue_name, 'send');
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
    INSERT INTO pgque.event (ev_slot, ev_id, ev_type, ev_data)
    SELECT w.slot, i, type, p FROM unnest(ids, payloads) AS u(i, p);
    PERFORM pgque._wake(nextval(w.hint), w.seen);
    RETURN ids;
END
$$;

CREATE FUNCTION pgque.send_batch(queue_name text, type text, payloads jsonb[]) RETURNS bigint[]
LANGUAGE sql AS $$
    SELECT pgque.send_batch(queue_name, type, payloads::pg_catalog.text[])
$$;

-- insert_event(queue_name, ev_type, ev_data [, ev_extra1 .. ev_extra4]):
-- PgQ's name for send().  Returns the event id.
CREATE FUNCTION pgque.insert_event(queue_name text, ev_type text, ev_data text,
                                   ev_extra1 text DEFAULT NULL, ev_extra2 text DEFAULT NULL,
                                   ev_extra3 text DEFAULT NULL, ev_extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send(queue_name, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4)
$$;

-- send_opts(queue_name, type, payload [, deliver_at, unique_key, unique_ttl,
--           max_retries, extra1 .. extra4]): send one event with any of the
-- send options; the entry point for drivers (call it with named arguments).
--   deliver_at   deliver at this time, not before (13_delayed.sql); NULL or
--                not in the future: at once.  Finite, at most _max_span()
--                (100 years) from now
--   unique_key   send only if no live event with this key exists on the
--                queue, else return that event's id (14_dedup.sql); needs
--                READ COMMITTED.  1 to 2000 bytes
--   unique_ttl   keep the key live this long after the send (default 0,
--                at most 100 years); only with unique_key
--   max_retries  this event's own limit of nacks before it is dead-lettered,
--                instead of the queue's (0 or more); kept by retries and
--                replays
-- send(), send_at() and send_unique() are this function with fewer options;
-- plain send() stays the fastest path.
-- Returns the event id.  Errors: PQ001 unknown queue; PQ006 NULL type, empty
-- or too long unique_key, unique_ttl out of range or without a key,
-- max_retries or deliver_at out of range; PQ009 unique_key outside READ
-- COMMITTED.
CREATE FUNCTION pgque.send_opts(queue_name text, type text, payload text,
                                deliver_at timestamptz DEFAULT NULL,
                                unique_key text DEFAULT NULL, unique_ttl interval DEFAULT NULL,
                                max_retries int DEFAULT NULL,
                                extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                                extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    w      record;
    id     bigint;
    holder bigint;
    parked boolean := deliver_at > now();
BEGIN
    PERFORM pgque._authorize(queue_name, 'send');
    IF type IS NULL THEN
        PERFORM pgque._invalid('event type', 'must not be NULL');
    ELSIF unique_key = '' THEN
        PERFORM pgque._invalid('unique key', 'must not be empty');
    ELSIF unique_ttl IS NOT NULL AND unique_key IS NULL THEN
        PERFORM pgque._invalid('unique_ttl', 'is only allowed with a unique key');
    END IF;
    -- A key is a btree index entry, which must fit a third of a page.
    PERFORM pgque._check_length('unique key', unique_key, 2000);
    IF unique_ttl IS NOT NULL THEN
        PERFORM pgque._check_interval('unique_ttl', unique_ttl, interval '0', pgque._max_span());
    END IF;
    IF max_retries IS NOT NULL THEN
        PERFORM pgque._check_int('max_retries', max_retries, 0);
    END IF;
    IF deliver_at IS NOT NULL THEN
        PERFORM pgque._check_time('deliver_at', deliver_at, pgque._max_span());
    END IF;
    IF unique_key IS NOT NULL THEN
        PERFORM pgque._require_read_committed('a send with a unique key');
    END IF;
    w := pgque._writable(queue_name);
    id := nextval(w.event_seq);
    IF unique_key IS NOT NULL THEN
        holder := pgque._dedup_claim(w.queue_id, unique_key, coalesce(unique_ttl, interval '0'), id, parked);
        IF holder <> id THEN
            RETURN holder;  -- a live event holds the key; our id stays unused
        END IF;
    END IF;
    IF parked THEN
        PERFORM pgque._park(w.queue_id, id, deliver_at, unique_key, type, payload,
                            extra1, extra2, extra3, extra4, max_retries);
    ELSE
        INSERT INTO pgque.event (ev_slot, ev_id, ev_type, ev_data, ev_extra1, ev_extra2, ev_extra3, ev_extra4,
                                 ev_max_retries)
        VALUES (w.slot, id, type, payload, extra1, extra2, extra3, extra4, max_retries);
    END IF;
    PERFORM pgque._wake(nextval(w.hint), w.seen);
    RETURN id;
END
$$;

CREATE FUNCTION pgque.send_opts(queue_name text, type text, payload jsonb,
                                deliver_at timestamptz DEFAULT NULL,
                                unique_key text DEFAULT NULL, unique_ttl interval DEFAULT NULL,
                                max_retries int DEFAULT NULL,
                                extra1 text DEFAULT NULL, extra2 text DEFAULT NULL,
                                extra3 text DEFAULT NULL, extra4 text DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send_opts(queue_name, type, payload::pg_catalog.text, deliver_at, unique_key, unique_ttl, max_retries,
                           extra1, extra2, extra3, extra4)
$$;
