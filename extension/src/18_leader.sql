-- Leader leases: one holder at a time per lease name, proven alive by
-- renewing before the lease runs out.  The Go Ticker elects its leader with
-- the lease 'ticker' (go/pgque/ticker.go): a leader that stops working (its
-- process frozen, its host stalled) stops renewing, and a standby takes over
-- once the lease has expired, even though the old leader's connection may
-- still be open.  A session advisory lock could not tell such a leader from
-- a working one, and does not survive a pooler in transaction mode.
--
-- Storage: one row per lease name in pgque.leader, updated in place
-- by each renewal.  This is metadata, not the event path, and it stays
-- tiny: the updated columns are not indexed, so every renewal is a HOT
-- update that page pruning reclaims without vacuum, and the table keeps one
-- page (fillfactor 50 leaves room for the new versions).  Under a held xmin
-- horizon the old versions of a row wait for it like any other dead tuple:
-- one per renewal, e.g. one a second for the Ticker's default 3 s lease,
-- about 100 bytes each; they are bounded by the time the horizon is held and
-- go at the next prune after it moves.  A standby's failed attempt writes
-- nothing (its UPDATE matches no row, and the INSERT finds the conflict
-- before inserting).  Sequences were the alternative without dead tuples,
-- but a sequence holds one number, not a holder, and one per lease name
-- would mean DDL at run time.
--
-- Times are clock_timestamp(), so a renewal late in a long transaction still
-- counts from when it ran.  The holder learns only whether it holds the
-- lease; it should count its lease from before it asked (its clock may
-- differ from the server's by less than the lease it assumes).
--
-- ttl range: more than 0 and at most 1 hour (PQ006 otherwise).

CREATE TABLE pgque.leader (
    name        text PRIMARY KEY,
    holder      text NOT NULL,
    expires_at  timestamptz NOT NULL,
    acquired_at timestamptz NOT NULL
) WITH (fillfactor = 50);

-- _leader_args(name, holder): check a lease name (like a queue name, at
-- most 63 bytes) and a holder (1..256 bytes of any text).  Raises PQ006.
CREATE FUNCTION pgque._leader_args(name text, holder text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque._check_name('lease', name, 63);
    IF holder IS NULL OR holder = '' THEN
        PERFORM pgque._invalid('lease holder', 'must not be NULL or empty');
    END IF;
    PERFORM pgque._check_length('lease holder', holder, 256);
END
$$;

-- leader_lease(name, holder, ttl): take the lease name for holder, or renew
-- it, until ttl from now: when nobody holds it, its lease expired, or holder
-- holds it already.  Returns true when holder holds the lease now, false
-- when another holder's lease is still running.  Errors: PQ006 (name not a
-- valid name, holder NULL, empty or over 256 bytes, ttl NULL, not positive
-- or over 1 hour).
CREATE FUNCTION pgque.leader_lease(name text, holder text, ttl interval) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    now_ timestamptz := pg_catalog.clock_timestamp();
BEGIN
    PERFORM pgque._leader_args(name, holder);
    PERFORM pgque._check_interval('lease ttl', ttl, interval '0', interval '1 hour', true);
    -- Under READ COMMITTED a concurrent renewal or takeover is waited for
    -- and the condition checked again on the row it left.
    UPDATE pgque.leader l
       SET holder = leader_lease.holder,
           expires_at = now_ + ttl,
           acquired_at = CASE WHEN l.holder = leader_lease.holder THEN l.acquired_at ELSE now_ END
     WHERE l.name = leader_lease.name
       AND (l.holder = leader_lease.holder OR l.expires_at <= now_);
    IF FOUND THEN
        RETURN true;
    END IF;
    INSERT INTO pgque.leader AS l (name, holder, expires_at, acquired_at)
    VALUES (leader_lease.name, leader_lease.holder, now_ + ttl, now_)
    ON CONFLICT ON CONSTRAINT leader_pkey DO NOTHING;
    RETURN FOUND;
END
$$;

-- leader_release(name, holder): give the lease up at once, if holder holds
-- it (expired or not), so that a standby need not wait for it to expire.
-- Returns whether holder held it.  Errors: PQ006 (as leader_lease).
CREATE FUNCTION pgque.leader_release(name text, holder text) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    PERFORM pgque._leader_args(name, holder);
    DELETE FROM pgque.leader l WHERE l.name = leader_release.name AND l.holder = leader_release.holder;
    RETURN FOUND;
END
$$;

-- leader_info(name): the lease's last holder, when its lease runs (or ran)
-- out, since when that holder has held it without a break, and whether the
-- lease is still running.  No row when the lease was never taken or was
-- released.  Errors: PQ006 (name not a valid name).
CREATE FUNCTION pgque.leader_info(name text)
RETURNS TABLE (holder text, expires_at timestamptz, acquired_at timestamptz, valid boolean)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    PERFORM pgque._check_name('lease', name, 63);
    RETURN QUERY
        SELECT l.holder, l.expires_at, l.acquired_at, l.expires_at > pg_catalog.clock_timestamp()
          FROM pgque.leader l WHERE l.name = leader_info.name;
END
$$;
