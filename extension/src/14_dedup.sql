-- Dedup: send_unique() and send_opts(unique_key => ...) send an event only
-- when no live event with the same key exists on the queue; otherwise they
-- return the live event's id and insert nothing.
--
-- A key is live while
--   * its event is pending: parked in the delayed store and not cancelled,
--     or not yet finished by every consumer subscribed to the queue (its
--     transaction is not visible in a consumer's last finished tick), or
--     waiting in the retry store of a consumer that nacked it; or
--   * less than its ttl has passed since the send that created it.
-- "Finished" is per consumer position: a batch that was received but not
-- acked still counts as pending.  Consumers that subscribe later never get
-- the event and do not count, except the first consumer of a queue that had
-- none: its events are kept for that one (unclaimed, 06_subscription.sql)
-- and count as pending meanwhile.  A queue with keep_unclaimed off and no
-- consumer holds nothing pending, so there a key is live only within its
-- ttl (or while parked).  A retried copy counts as pending only until the
-- retry mover publishes it.
--
-- The store is insert-only, in three partitions recycled by
-- maint_rotate_dedup() like the other logs; live keys are copied back, so it
-- holds about the live keys plus what expired in the last two periods.
-- Each row carries dk_n, the number of events its key has had: senders
-- racing for a key compute the same n, and the primary key (queue, key, n,
-- partition) lets one insert win while the others wait for its transaction.
-- If it rolls back, a waiter's insert goes through instead.  All senders of
-- a rotation period insert into one partition, and a sender holds a lock on
-- every partition (its lookup) until it commits, so no rotation separates
-- racing senders.  Lookups need snapshots newer than the lock, which only
-- READ COMMITTED gives: unique sends require it.

CREATE TABLE pgque.dedup (
    dk_part    int         NOT NULL,  -- partition: dedup generation % 3
    dk_queue   int         NOT NULL,
    dk_key     text        NOT NULL,
    dk_n       int         NOT NULL,
    ev_id      bigint      NOT NULL,
    dk_txid    xid8,                  -- the transaction consumers see the event in; NULL while parked
    dk_expires timestamptz NOT NULL,  -- first send + ttl
    PRIMARY KEY (dk_queue, dk_key, dk_n, dk_part)
) PARTITION BY LIST (dk_part);
CREATE TABLE pgque.dedup_0 PARTITION OF pgque.dedup FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.dedup_1 PARTITION OF pgque.dedup FOR VALUES IN (1) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.dedup_2 PARTITION OF pgque.dedup FOR VALUES IN (2) WITH (autovacuum_enabled = false);
CREATE SEQUENCE pgque.dedup_gen MINVALUE 0 START 0;
CREATE SEQUENCE pgque.dedup_switched_at MINVALUE 0 START 0;  -- epoch ms of the last switch

DO $$
DECLARE
    p int;
BEGIN
    FOR p IN 0 .. 2 LOOP
        PERFORM pg_catalog.pg_extension_config_dump(format('pgque.dedup_%s', p), '');
    END LOOP;
    PERFORM pg_catalog.pg_extension_config_dump('pgque.dedup_gen', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.dedup_switched_at', '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- plain SQL install: not an extension
END
$$;

-- _dedup_txid(k): the transaction whose commit shows k's event to
-- consumers; NULL while the event is parked, and also NULL (with parked
-- false) when it was cancelled.
CREATE FUNCTION pgque._dedup_txid(k pgque.dedup, OUT txid xid8, OUT parked boolean)
LANGUAGE plpgsql AS $$
DECLARE
    d pgque.delayed_done;
BEGIN
    txid := k.dk_txid;
    parked := false;
    IF txid IS NULL THEN
        SELECT * INTO d FROM pgque.delayed_done x WHERE x.dd_queue = k.dk_queue AND x.ev_id = k.ev_id LIMIT 1;
        IF NOT FOUND THEN
            parked := EXISTS (SELECT 1 FROM pgque.delayed x WHERE x.dq_queue = k.dk_queue AND x.ev_id = k.ev_id);
        ELSIF d.dd_moved THEN
            txid := d.dd_txid;
        END IF;
    END IF;
END
$$;

-- _dedup_live(k): whether key row k is live (see the top of this file).
CREATE FUNCTION pgque._dedup_live(k pgque.dedup) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    t record;
BEGIN
    IF now() < k.dk_expires THEN
        RETURN true;
    END IF;
    t := pgque._dedup_txid(k);
    IF t.parked THEN
        RETURN true;
    ELSIF t.txid IS NULL THEN
        RETURN false;
    END IF;
    -- A cooperative worker's position counts while it holds a batch (its
    -- window's start), as for rotation: its consumer's position has moved
    -- past the window already.
    RETURN EXISTS (SELECT 1 FROM pgque.subscription s
                    WHERE s.sub_queue = k.dk_queue AND NOT pg_visible_in_snapshot(t.txid, s.sub_last_snapshot)
                      AND (s.sub_parent IS NULL OR s.sub_batch IS NOT NULL))
        -- kept for the queue's first consumer
        OR EXISTS (SELECT 1 FROM pgque.queue q
                    WHERE q.queue_id = k.dk_queue AND NOT pg_visible_in_snapshot(t.txid, q.queue_unclaimed_snapshot))
        OR EXISTS (SELECT 1 FROM pgque.retry_queue r
                    WHERE r.rq_sub IN (SELECT c.sub_id FROM pgque.consumer c WHERE c.sub_queue = k.dk_queue)
                      AND r.ev_id = k.ev_id);
END
$$;

-- _dedup_claim(queue_id, key, ttl, id, parked): claim key for event id.
-- Returns id when this transaction now holds the key, else the id of the
-- live event that holds it.  Caller checked READ COMMITTED and arguments.
CREATE FUNCTION pgque._dedup_claim(queue_id int, key text, ttl interval, id bigint, parked boolean) RETURNS bigint
LANGUAGE plpgsql AS $$
DECLARE
    k pgque.dedup;
    checked int;
    n int;
    c int;
BEGIN
    LOOP
        checked := 0;
        FOR k IN SELECT * FROM pgque.dedup x WHERE x.dk_queue = queue_id AND x.dk_key = key ORDER BY x.dk_n DESC LOOP
            IF pgque._dedup_live(k) THEN
                RETURN k.ev_id;
            END IF;
            checked := greatest(checked, k.dk_n);
        END LOOP;
        SELECT coalesce(max(x.dk_n), 0) + 1 INTO n FROM pgque.dedup x WHERE x.dk_queue = queue_id AND x.dk_key = key;
        -- Each statement has a snapshot of its own: a sender that committed
        -- between the two shows here first.  Its row must be checked too.
        IF n <> checked + 1 THEN
            CONTINUE;
        END IF;
        -- Waits for a racing sender of the same key and n: DO NOTHING when
        -- it committed (the loop then finds its event), inserts when it
        -- rolled back.
        INSERT INTO pgque.dedup (dk_part, dk_queue, dk_key, dk_n, ev_id, dk_txid, dk_expires)
        VALUES ((pgque._seq_value('pgque.dedup_gen') % 3)::int, queue_id, key, n, id,
                CASE WHEN parked THEN NULL ELSE pg_current_xact_id() END, now() + ttl)
        ON CONFLICT DO NOTHING;
        GET DIAGNOSTICS c = ROW_COUNT;
        IF c = 1 THEN
            RETURN id;
        END IF;
    END LOOP;
END
$$;

-- maint_rotate_dedup(period): recycle the oldest partition of the dedup
-- store once the current one is period old: expired keys are dropped, live
-- ones copied back (a parked event that was published meanwhile gets the
-- publishing transaction recorded).  Keys of dropped queues are dropped.
-- Skips (0) when the partition stays busy for 100 ms (every unique send
-- holds it until it commits) or another session is rotating.  When the keys
-- of some queue cannot be copied back (a trigger refuses them, say), nothing
-- is truncated: each such queue is recorded (step 'dedup',
-- get_queue_info().errors) and logged as a WARNING, and maint() goes on; a
-- failure that is no queue's raises (19_put_back.sql).
-- Returns 1 when it switched, else 0.  Errors: PQ006 (period NULL, not more
-- than 0, or more than 100 years).
CREATE FUNCTION pgque.maint_rotate_dedup(period interval DEFAULT '1 minute') RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    gen  bigint := pgque._seq_value('pgque.dedup_gen');
    nxt  int := ((gen + 1) % 3)::int;
    tbl  text := format('pgque.dedup_%s', nxt);
    keep pgque.dedup[];
BEGIN
    IF NOT pgque._store_rotation_begin('dedup', period, tbl) THEN
        RETURN 0;
    END IF;
    keep := ARRAY(SELECT ROW(k.dk_part, k.dk_queue, k.dk_key, k.dk_n, k.ev_id,
                             coalesce(k.dk_txid, (pgque._dedup_txid(k)).txid), k.dk_expires)::pgque.dedup
                    FROM pgque.dedup k
                   WHERE k.dk_part = nxt
                     AND k.dk_queue IN (SELECT queue_id FROM pgque.queue)
                     AND pgque._dedup_live(k));
    IF NOT pgque._recycle('dedup', tbl, nxt, keys => keep) THEN
        RETURN 0;
    END IF;
    PERFORM pgque._rotation_end('dedup', gen);
    RETURN 1;
END
$$;

-- send_unique(queue_name, type, payload, key [, ttl]): send() unless the
-- queue has a live event with this key (see the top of this file); then
-- return that event's id and insert nothing.  ttl (default 0, at most 100
-- years) keeps the key live for that long after this send even once the
-- event is consumed.  key is 1 to 2000 bytes.
-- Concurrent senders of one key: one wins, the others wait for its
-- transaction and return its id (or, if it rolls back, one of them wins).
-- Must run at READ COMMITTED.
-- Returns the event id.  Errors: PQ001, PQ006 (NULL, empty or too long key,
-- ttl out of range, NULL type), PQ009 (isolation).
CREATE FUNCTION pgque.send_unique(queue_name text, type text, payload text, key text,
                                  ttl interval DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    IF key IS NULL THEN
        PERFORM pgque._invalid('unique key', 'must not be NULL');
    END IF;
    RETURN pgque.send_opts(queue_name, type, payload, unique_key => key, unique_ttl => coalesce(ttl, interval '0'));
END
$$;

CREATE FUNCTION pgque.send_unique(queue_name text, type text, payload jsonb, key text,
                                  ttl interval DEFAULT NULL) RETURNS bigint
LANGUAGE sql AS $$
    SELECT pgque.send_unique(queue_name, type, payload::pg_catalog.text, key, ttl)
$$;
