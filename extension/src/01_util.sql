-- Internal helpers shared by the API: argument checks, lookups that raise
-- pgque's own SQLSTATEs, and advisory-lock keys.
--
-- SQLSTATEs: class PQ, stable.  The one list of them, with their meanings,
-- is docs/sql-reference.md's "SQLSTATE codes"; the Go module's error table
-- (go/internal/errtable) maps each to the SDK's sentinel error, the HTTP
-- status and the CLI's exit status, and its tests check that every code
-- raised here is in both.  PQ000 is raised and caught inside the engine
-- only (19_put_back.sql) and never reaches a caller.

-- Advisory lock keys (two-int form; the first int is pgque's namespace).
--   (1886482281, queue_id)          ticks of one queue (ticker, force_tick)
--   (1886482283, hashtext(name))    creators of one queue name
--   (1886482287, group)             creators of queues of one event
--                                   partition group (_event_group); the
--                                   ticker tries it shared (_group_members)
--   (1886482285, queue_id)          drop_queue (exclusive) against the
--                                   periodic work and info functions that
--                                   read the queue's sequences and tables
--                                   (shared, tried: they skip the queue)
--   (1886482284, hashtext('<queue>/<consumer>'))  the Go SDK's single
--                                   reader of a consumer, held by a
--                                   transaction left open
--                                   (WithSingleReader, consumer.go)
--   (1886482288, 0)                 the ticker() call that may mark send
--                                   hints seen (04_ticker.sql, "Hints")
--   (_lock_ns() + 20 and + 21, 0)   the delayed mover, store rotations
--                                   (13_delayed.sql)
--   (_lock_ns() + 22, 0)            maint(): one call at a time (10_maint.sql)
CREATE FUNCTION pgque._lock_ns() RETURNS int
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 1886482281 $$;

-- _invalid(what, detail): raise PQ006 "invalid <what>: <detail>".
CREATE FUNCTION pgque._invalid(what text, detail text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pgque: invalid %: %', what, detail USING ERRCODE = 'PQ006';
END
$$;

-- _quote(value): a caller's text as error messages quote it: quoted, and
-- when longer than 100 characters only its first 100, a marker and its
-- length, so that a huge bad value never makes a huge message (or log
-- line).  NULL as NULL.
CREATE FUNCTION pgque._quote(value text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN value IS NULL THEN 'NULL'
                WHEN length(value) <= 100 THEN quote_literal(value)
                ELSE quote_literal(left(value, 100)) || format('... (%s bytes in all)', octet_length(value)) END
$$;

-- Ranges.  Every interval, time and number a caller can set is checked
-- against a documented range (docs/sql-reference.md, "Ranges") by the
-- helpers below, so that nothing the engine later adds, multiplies or
-- converts can overflow, and no loop runs without end.  Durations and
-- periods are at most _max_span(); times are finite and at most that far
-- from now.  100 years keeps every sum with a time of this millennium far
-- inside PostgreSQL's range, and fits Go's time.Duration (292 years).

-- _max_span(): the longest duration or period anywhere, and how far from
-- now a time may be.
CREATE FUNCTION pgque._max_span() RETURNS interval
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT interval '100 years' $$;

-- _span_text(v): a bound of a range as messages spell it, in words and
-- whatever the session's IntervalStyle: '100 years', '1 second', '0'.
CREATE FUNCTION pgque._span_text(v interval) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT coalesce(nullif(array_to_string(ARRAY(
               SELECT n || ' ' || unit || CASE WHEN n = 1 THEN '' ELSE 's' END
                 FROM (VALUES (1, extract(year FROM v), 'year'), (2, extract(month FROM v), 'month'),
                              (3, extract(day FROM v), 'day'), (4, extract(hour FROM v), 'hour'),
                              (5, extract(minute FROM v), 'minute'),
                              (6, trim_scale(extract(second FROM v)), 'second')) p(o, n, unit)
                WHERE n <> 0 ORDER BY o), ' '), ''), '0')
$$;

-- _check_int(what, value, lo, hi): value, unless it is NULL or outside
-- lo..hi (hi NULL: no upper bound but the type's).  Raises PQ006.
CREATE FUNCTION pgque._check_int(what text, value bigint, lo bigint, hi bigint DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NULL THEN
        PERFORM pgque._invalid(what, 'must not be NULL');
    ELSIF value < lo OR value > hi THEN
        PERFORM pgque._invalid(what, format('%s is out of range: must be %s', value,
            CASE WHEN hi IS NULL THEN format('at least %s', lo) ELSE format('from %s to %s', lo, hi) END));
    END IF;
    RETURN value;
END
$$;

-- _check_interval(what, value, lo, hi, above): value, unless it is NULL or
-- outside lo..hi (above: more than lo, not lo itself).  Intervals compare
-- as PostgreSQL compares them, a month as 30 days and a day as 24 hours.
-- Raises PQ006.
CREATE FUNCTION pgque._check_interval(what text, value interval, lo interval, hi interval,
                                      above boolean DEFAULT false) RETURNS interval
LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NULL THEN
        PERFORM pgque._invalid(what, 'must not be NULL');
    ELSIF value < lo OR (above AND value = lo) OR value > hi THEN
        PERFORM pgque._invalid(what, format('%L is out of range: must be %s %s and at most %s', value,
            CASE WHEN above THEN 'more than' ELSE 'at least' END, pgque._span_text(lo), pgque._span_text(hi)));
    END IF;
    RETURN value;
END
$$;

-- _check_time(what, value, ahead, back): value, unless it is NULL, infinite,
-- more than ahead after now or (back not NULL) more than back before now.
-- Raises PQ006.
CREATE FUNCTION pgque._check_time(what text, value timestamptz, ahead interval,
                                  back interval DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql AS $$
BEGIN
    IF value IS NULL THEN
        PERFORM pgque._invalid(what, 'must not be NULL');
    ELSIF NOT isfinite(value) OR value > now() + ahead OR value < now() - back THEN
        PERFORM pgque._invalid(what, format('%L is out of range: must be a finite time %s', value,
            CASE WHEN back IS NULL THEN format('at most %s from now', pgque._span_text(ahead))
                 ELSE format('from %s ago to %s from now', pgque._span_text(back), pgque._span_text(ahead)) END));
    END IF;
    RETURN value;
END
$$;

-- _check_length(what, value, max_bytes): PQ006 when value is longer than
-- max_bytes bytes.
CREATE FUNCTION pgque._check_length(what text, value text, max_bytes int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF octet_length(value) > max_bytes THEN
        PERFORM pgque._invalid(what, format('%s is longer than %s bytes', pgque._quote(value), max_bytes));
    END IF;
END
$$;

-- _check_name(kind, name, max_bytes): validate a queue or consumer name.
-- Names are 1..max_bytes bytes of [A-Za-z0-9_.-], starting with a letter or
-- digit, so they are safe in channel names, logs and URLs.  Raises PQ006.
CREATE FUNCTION pgque._check_name(kind text, name text, max_bytes int) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF name IS NULL THEN
        PERFORM pgque._invalid(kind || ' name', 'must not be NULL');
    ELSIF name = '' THEN
        PERFORM pgque._invalid(kind || ' name', 'must not be empty');
    END IF;
    PERFORM pgque._check_length(kind || ' name', name, max_bytes);
    IF name !~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$' THEN
        PERFORM pgque._invalid(kind || ' name',
            format('%s may only contain letters, digits, "_", "." and "-", and must start with a letter or digit',
                   pgque._quote(name)));
    END IF;
END
$$;

-- _queue(name): the queue row, or PQ001.  Names that cannot exist are
-- reported as invalid (PQ006) so a typo and a bad value are told apart.
-- A session that may not inspect the queue gets 42501 whether it exists or
-- not (17_namespace.sql).
CREATE FUNCTION pgque._queue(name text) RETURNS pgque.queue
LANGUAGE plpgsql STABLE AS $$
DECLARE
    q pgque.queue;
BEGIN
    PERFORM pgque._authorize(name, 'inspect');
    SELECT * INTO q FROM pgque.queue WHERE queue_name = name;
    IF NOT FOUND THEN
        PERFORM pgque._check_name('queue', name, 57);
        RAISE EXCEPTION 'pgque: queue % does not exist', quote_literal(name) USING ERRCODE = 'PQ001';
    END IF;
    RETURN q;
END
$$;

-- _subscription(queue, consumer, lock): the consumer with its newest state.
-- With lock, its row is locked FOR UPDATE first, so the state read is the
-- newest committed one and nobody changes it until we commit; that needs
-- READ COMMITTED (an older snapshot would read an older state).
-- Raises PQ001, PQ003, PQ009.
CREATE FUNCTION pgque._subscription(queue_name text, consumer_name text, lock boolean) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    q  pgque.queue := pgque._queue(queue_name);
    id int;
    s  pgque.subscription;
BEGIN
    IF lock THEN
        PERFORM pgque._require_read_committed('this consumer call');
        SELECT sub_id INTO id FROM pgque.consumer
         WHERE sub_queue = q.queue_id AND sub_consumer = consumer_name AND sub_parent IS NULL FOR UPDATE;
    ELSE
        SELECT sub_id INTO id FROM pgque.consumer
         WHERE sub_queue = q.queue_id AND sub_consumer = consumer_name AND sub_parent IS NULL;
    END IF;
    IF NOT FOUND THEN
        PERFORM pgque._check_name('consumer', consumer_name, 63);
        RAISE EXCEPTION 'pgque: consumer % is not subscribed to queue %',
            quote_literal(consumer_name), quote_literal(queue_name) USING ERRCODE = 'PQ003';
    END IF;
    SELECT * INTO s FROM pgque.subscription WHERE sub_id = id;
    RETURN s;
END
$$;

-- _batch_sub(batch_id): the consumer whose open batch this is, locked like
-- _subscription(); a NULL row when there is none.  Raises PQ006, PQ009.
CREATE FUNCTION pgque._batch_sub(batch_id bigint) RETURNS pgque.subscription
LANGUAGE plpgsql AS $$
DECLARE
    id int;
    s  pgque.subscription;
BEGIN
    IF batch_id IS NULL THEN
        PERFORM pgque._invalid('batch id', 'must not be NULL');
    END IF;
    PERFORM pgque._require_read_committed('this consumer call');
    SELECT ss_sub INTO id FROM pgque.sub_state WHERE sub_batch = batch_id LIMIT 1;
    -- Another tenant's batch is as unknown as a batch that does not exist.
    IF NOT pgque._may(pgque._consumer_queue(id), 'receive') THEN
        RETURN s;
    END IF;
    PERFORM 1 FROM pgque.consumer WHERE sub_id = id FOR UPDATE;
    SELECT * INTO s FROM pgque.subscription x WHERE x.sub_id = id AND x.sub_batch = batch_id;
    RETURN s;
END
$$;

-- _batch_not_found(batch_id): raise PQ004.
CREATE FUNCTION pgque._batch_not_found(batch_id bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pgque: batch % is not open (unknown, or already finished)', batch_id
        USING ERRCODE = 'PQ004';
END
$$;

-- _require_read_committed(what): ticks and table switches read "the next xid
-- now" from a fresh statement snapshot, which only READ COMMITTED gives.
CREATE FUNCTION pgque._require_read_committed(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF current_setting('transaction_isolation') <> 'read committed' THEN
        RAISE EXCEPTION 'pgque: % must run at READ COMMITTED isolation, not %',
            what, upper(current_setting('transaction_isolation')) USING ERRCODE = 'PQ009';
    END IF;
END
$$;

-- _event_table(queue_id, n): name of event table (partition) n of a queue.
CREATE FUNCTION pgque._event_table(queue_id int, n bigint) RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE AS $$  -- as format(): so that callers inline it
    SELECT format('pgque.event_%s_%s', queue_id, n)
$$;

-- _seq_value(seq): last value handed out by a sequence, 0 before the first.
-- Not transactional: every session sees the newest value at once.
CREATE FUNCTION pgque._seq_value(seq regclass) RETURNS bigint
LANGUAGE sql AS $$
    SELECT coalesce(pg_sequence_last_value(seq), 0)
$$;

-- _lock_nowait(tables): take ACCESS EXCLUSIVE locks on tables (a
-- comma-separated list of pgque's own table names) without waiting; false
-- when someone else holds one.  Maintenance skips quietly in that case.
CREATE FUNCTION pgque._lock_nowait(tables text) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format('LOCK TABLE %s IN ACCESS EXCLUSIVE MODE NOWAIT', tables);
    RETURN true;
EXCEPTION WHEN lock_not_available THEN
    RETURN false;
END
$$;

-- Partitioned logs and stores recycled by TRUNCATE (ticks and consumer
-- states: 'log'; the delayed and dedup stores) keep their state in two
-- sequences, pgque.<store>_gen (the current partition is gen % 3) and
-- pgque.<store>_switched_at (epoch milliseconds of the last switch).

-- _rotation_due(store, period): has store's current partition been current
-- for period?  Raises PQ006 unless period is more than 0 and at most
-- _max_span().
CREATE FUNCTION pgque._rotation_due(store text, period interval) RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque._check_interval('period', period, interval '0', pgque._max_span(), true);
    RETURN now() - to_timestamp(pgque._seq_value(format('pgque.%s_switched_at', store)) / 1000.0) >= period;
END
$$;

-- _rotation_end(store, gen): make store's generation gen + 1 current, now.
CREATE FUNCTION pgque._rotation_end(store text, gen bigint) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM setval(format('pgque.%s_gen', store), gen + 1, true);
    PERFORM setval(format('pgque.%s_switched_at', store), floor(extract(epoch FROM now()) * 1000)::bigint, true);
END
$$;

-- _log_part(): the partition that tick and consumer-state rows go to now.
CREATE FUNCTION pgque._log_part() RETURNS int
LANGUAGE sql AS $$ SELECT (pgque._seq_value('pgque.log_gen') % 3)::int $$;

-- _channel(queue_name): the NOTIFY channel of a queue, 'pgque_' || name
-- (at most 63 bytes, which is why queue names are limited to 57).
CREATE FUNCTION pgque._channel(queue_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT 'pgque_' || queue_name $$;
