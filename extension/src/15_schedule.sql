-- Schedules: events that maint() sends periodically, every interval or on a
-- cron expression.
--
-- A schedule is a row with its next due time.  maint() fires every due
-- schedule through send(), inside maint's own transaction, so the event is
-- transactional and ticked like any other.  Each due row is claimed with
-- FOR UPDATE SKIP LOCKED and its due time is checked again on the locked
-- version; firing moves the due time past "now" in the same transaction, so a
-- concurrent maint() either skips the row (still locked) or sees the moved
-- due time: one event per due time, whatever runs concurrently.
--
-- Missed runs (maint() not running for a while): a schedule that is found
-- overdue fires ONCE, for the earliest due time it missed, and its next due
-- time becomes the first one after now.  Downtime never floods a queue.
--
-- The event carries extra1 = schedule name and extra2 = the due time it
-- stands for, in UTC as 'YYYY-MM-DD"T"HH24:MI:SS"Z"'.
--
-- Dropping a queue drops its schedules (foreign key ON DELETE CASCADE).
--
-- Schedule names are unique per namespace, the namespace of the queue a
-- schedule sends to; queues without one share a scope of their own.  So
-- tenants (a namespace each) choose names freely and another tenant's
-- schedules look unknown; without namespaces, names are unique as before.
-- A role granted admin on a single queue of a namespace shares its names.
--
-- SQLSTATEs of this file: PQ015 schedule already exists, PQ016 schedule not
-- found.

CREATE TABLE pgque.schedule (
    sched_id         serial PRIMARY KEY,
    sched_name       text NOT NULL,
    sched_queue      int  NOT NULL REFERENCES pgque.queue ON DELETE CASCADE,
    sched_namespace  text NOT NULL,          -- the queue's namespace, '' for none (queue names never change)
    sched_type       text NOT NULL,
    sched_payload    text,
    -- Exactly one of: a fixed period, anchored at the first due time, or a
    -- cron expression as given (parsed again when used, it is short).
    sched_every      interval,
    sched_cron       text,
    sched_time_zone  text NOT NULL,          -- for cron fields and calendar (day, month) periods
    sched_next_run   timestamptz NOT NULL,   -- the next due time
    sched_last_run   timestamptz,            -- the due time of the last event sent
    sched_last_fired timestamptz,            -- when it was sent
    sched_last_event bigint,                 -- its event id
    sched_runs       bigint NOT NULL DEFAULT 0,
    sched_created_at timestamptz NOT NULL DEFAULT now(),
    CHECK ((sched_every IS NULL) <> (sched_cron IS NULL)),
    UNIQUE (sched_namespace, sched_name)
);
CREATE INDEX schedule_next_run_idx ON pgque.schedule (sched_next_run);

DO $$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('pgque.schedule', '');
    -- Its sequence too, or a restored database would hand out used ids.
    PERFORM pg_catalog.pg_extension_config_dump('pgque.schedule_sched_id_seq', '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- plain SQL install (pgque migrate): not an extension, nothing to mark
END
$$;

-- A parsed cron expression: the allowed values of each field, ascending
-- (weekdays 0-6, Sunday 0).  day_or: both day fields are restricted, so a
-- day matches when either does (the classic cron rule); otherwise both must.
CREATE TYPE pgque._cron AS (
    minutes  int[],
    hours    int[],
    days     int[],
    months   int[],
    weekdays int[],
    day_or   boolean
);

-- _cron_invalid(expr, detail): raise PQ006 naming the whole expression.
CREATE FUNCTION pgque._cron_invalid(expr text, detail text) RETURNS void
LANGUAGE sql AS $$
    SELECT pgque._invalid('cron expression', format('%s: %s', pgque._quote(expr), detail))
$$;

-- _cron_value(expr, field, v, lo, hi, names, base): one value of a cron
-- field: a number in lo..hi, or names[i] (case already folded) = base + i - 1.
CREATE FUNCTION pgque._cron_value(expr text, field text, v text, lo int, hi int,
                                  names text[], base int) RETURNS int
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    i int;
BEGIN
    IF v ~ '^[0-9]+$' THEN
        i := CASE WHEN length(v) <= 9 THEN v::int ELSE hi + 1 END;
    ELSE
        i := base + array_position(names, v) - 1;
        IF i IS NULL THEN
            PERFORM pgque._cron_invalid(expr, format('%s value %s is not a number%s', field, pgque._quote(v),
                CASE WHEN names IS NULL THEN '' ELSE format(' or a name (%s)', array_to_string(names, ', ')) END));
        END IF;
    END IF;
    IF i < lo OR i > hi THEN
        PERFORM pgque._cron_invalid(expr, format('%s value %s is out of range %s-%s', field,
                                                 CASE WHEN length(v) <= 100 THEN v ELSE pgque._quote(v) END, lo, hi));
    END IF;
    RETURN i;
END
$$;

-- _cron_field(expr, field, spec, lo, hi, names, base): the values one field
-- allows, sorted: a comma-separated list of "*", "v" or "a-b", each
-- optionally followed by "/step" (not after a single value).
CREATE FUNCTION pgque._cron_field(expr text, field text, spec text, lo int, hi int,
                                  names text[] DEFAULT NULL, base int DEFAULT 0) RETURNS int[]
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    item text;
    m    text[];
    a    int;
    b    int;
    step int;
    vals int[] := '{}';
BEGIN
    FOREACH item IN ARRAY string_to_array(spec, ',') LOOP
        IF item = '' THEN
            PERFORM pgque._cron_invalid(expr, format('%s field %s has an empty list item', field, pgque._quote(spec)));
        END IF;
        m := regexp_match(item, '^([^-/]+)(?:-([^-/]+))?(?:/(.*))?$');
        IF m IS NULL OR (m[1] = '*' AND m[2] IS NOT NULL) THEN
            PERFORM pgque._cron_invalid(expr, format('%s field item %s is not "*", a value, or a range a-b, '
                                                     'optionally with /step', field, pgque._quote(item)));
        END IF;
        IF m[1] = '*' THEN
            a := lo;
            b := hi;
        ELSE
            a := pgque._cron_value(expr, field, m[1], lo, hi, names, base);
            b := CASE WHEN m[2] IS NULL THEN a ELSE pgque._cron_value(expr, field, m[2], lo, hi, names, base) END;
            IF a > b THEN
                PERFORM pgque._cron_invalid(expr, format('%s range %s is reversed', field, item));
            END IF;
        END IF;
        step := 1;
        IF m[3] IS NOT NULL THEN
            IF m[1] <> '*' AND m[2] IS NULL THEN
                PERFORM pgque._cron_invalid(expr, format('%s field item %s: a step needs "*" or a range a-b', field,
                                                         pgque._quote(item)));
            ELSIF m[3] !~ '^[0-9]{1,9}$' OR m[3]::int = 0 THEN
                PERFORM pgque._cron_invalid(expr, format('%s step %s must be a positive number', field, pgque._quote(m[3])));
            END IF;
            step := m[3]::int;
        END IF;
        vals := vals || ARRAY(SELECT generate_series(a, b, step));
    END LOOP;
    RETURN ARRAY(SELECT DISTINCT v FROM unnest(vals) v ORDER BY v);
END
$$;

-- _cron_parse(expr): parse a 5-field cron expression (minute hour
-- day-of-month month day-of-week) or an @hourly/@daily/@midnight/@weekly/
-- @monthly/@yearly/@annually shortcut.  Fields as in _cron_field; months
-- jan-dec and days sun-sat by name too, 0 and 7 both Sunday; case does not
-- matter.  Like Vixie cron (and pg_cron), a day field counts as restricted
-- unless it starts with "*".  Rejects expressions that can never fire.
-- Errors: PQ006 naming the field and value.
CREATE FUNCTION pgque._cron_parse(expr text) RETURNS pgque._cron
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    e text := lower(btrim(expr, E' \t\r\n'));
    f text[];
    c pgque._cron;
BEGIN
    IF expr IS NULL THEN
        PERFORM pgque._invalid('cron expression', 'must not be NULL');
    END IF;
    e := CASE e WHEN '@hourly' THEN '0 * * * *'
                WHEN '@daily' THEN '0 0 * * *'
                WHEN '@midnight' THEN '0 0 * * *'
                WHEN '@weekly' THEN '0 0 * * 0'
                WHEN '@monthly' THEN '0 0 1 * *'
                WHEN '@yearly' THEN '0 0 1 1 *'
                WHEN '@annually' THEN '0 0 1 1 *'
                ELSE e END;
    IF e LIKE '@%' THEN
        PERFORM pgque._cron_invalid(expr, 'unknown shortcut (known: @hourly, @daily, @midnight, @weekly, '
                                          '@monthly, @yearly, @annually)');
    ELSIF e = '' THEN
        PERFORM pgque._cron_invalid(expr, 'is empty');
    END IF;
    f := regexp_split_to_array(e, '\s+');
    IF cardinality(f) <> 5 THEN
        PERFORM pgque._cron_invalid(expr, format('has %s fields, expected 5: minute hour day-of-month month day-of-week',
                                                 cardinality(f)));
    END IF;
    c.minutes := pgque._cron_field(expr, 'minute', f[1], 0, 59);
    c.hours := pgque._cron_field(expr, 'hour', f[2], 0, 23);
    c.days := pgque._cron_field(expr, 'day-of-month', f[3], 1, 31);
    c.months := pgque._cron_field(expr, 'month', f[4], 1, 12,
        '{jan,feb,mar,apr,may,jun,jul,aug,sep,oct,nov,dec}', 1);
    c.weekdays := ARRAY(SELECT DISTINCT v % 7 FROM unnest(pgque._cron_field(expr, 'day-of-week', f[5], 0, 7,
        '{sun,mon,tue,wed,thu,fri,sat}', 0)) v ORDER BY 1);
    c.day_or := f[3] NOT LIKE '*%' AND f[5] NOT LIKE '*%';
    -- With day_or, some weekday of every week matches.  Otherwise a "*" day
    -- of month includes the 1st, whose weekday cycles through all seven
    -- over the years; only a day-of-month list can miss every month.
    IF NOT c.day_or AND NOT EXISTS (
           SELECT 1 FROM unnest(c.months) mo, unnest(c.days) d
            WHERE d <= CASE WHEN mo = 2 THEN 29 WHEN mo IN (4, 6, 9, 11) THEN 30 ELSE 31 END) THEN
        PERFORM pgque._cron_invalid(expr, format('can never fire: day-of-month %s does not occur in month %s',
                                                 pgque._quote(f[3]), pgque._quote(f[4])));
    END IF;
    RETURN c;
END
$$;

-- _cron_next_local(c, t): the first local time >= t (whole minutes) that c
-- matches.  Walks the allowed values, skipping whole months, days and hours
-- that do not match, so its cost does not grow with the distance to the
-- next run.  Any expression _cron_parse accepts matches within 12 years
-- (29 February every 8, a weekday on the 1st of a month within 11), so the
-- search is bounded.
CREATE FUNCTION pgque._cron_next_local(c pgque._cron, t timestamp) RETURNS timestamp
LANGUAGE plpgsql IMMUTABLE AS $$
DECLARE
    y0   int := extract(year FROM t);
    mo0  int := extract(month FROM t);
    d0   int := extract(day FROM t);
    h0   int := extract(hour FROM t);
    mi0  int := extract(minute FROM t);
    y    int;
    mo   int;
    d    int;
    h    int;
    mi   int;
    dim  int;
    dow1 int;
    same_month boolean;
    same_day   boolean;
BEGIN
    FOR y IN y0 .. y0 + 14 LOOP
        FOREACH mo IN ARRAY c.months LOOP
            CONTINUE WHEN y = y0 AND mo < mo0;
            same_month := y = y0 AND mo = mo0;
            dim := extract(day FROM make_date(y, mo, 1) + interval '1 month - 1 day');
            dow1 := extract(dow FROM make_date(y, mo, 1));
            FOR d IN CASE WHEN same_month THEN d0 ELSE 1 END .. dim LOOP
                IF c.day_or THEN
                    CONTINUE WHEN NOT (d = ANY (c.days) OR (dow1 + d - 1) % 7 = ANY (c.weekdays));
                ELSE
                    CONTINUE WHEN NOT (d = ANY (c.days) AND (dow1 + d - 1) % 7 = ANY (c.weekdays));
                END IF;
                same_day := same_month AND d = d0;
                FOREACH h IN ARRAY c.hours LOOP
                    CONTINUE WHEN same_day AND h < h0;
                    FOREACH mi IN ARRAY c.minutes LOOP
                        CONTINUE WHEN same_day AND h = h0 AND mi < mi0;
                        RETURN make_timestamp(y, mo, d, h, mi, 0);
                    END LOOP;
                END LOOP;
            END LOOP;
        END LOOP;
    END LOOP;
    RAISE EXCEPTION 'pgque: internal error: cron expression %s matches nothing after %', c, t;
END
$$;

-- _cron_next(c, after, tz): the first time after "after" at which c matches
-- the wall clock of time zone tz.  Local times are converted as PostgreSQL
-- converts them: one that a DST change skips runs as much later (02:30
-- becomes 03:30), one that occurs twice runs once, at its second occurrence.
CREATE FUNCTION pgque._cron_next(c pgque._cron, after timestamptz, tz text) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    -- When the clocks go back within the next 3 hours, the local times of
    -- the repeated span lie before after's and still come (again): start
    -- the search there.  The candidates that turn out not to be later than
    -- "after" are stepped over, a few hours' worth at most.
    t   timestamp := date_trunc('minute', least(after AT TIME ZONE tz,
                                                (after + interval '3 hours') AT TIME ZONE tz - interval '3 hours'))
                     + interval '1 minute';
    res timestamptz;
BEGIN
    LOOP
        t := pgque._cron_next_local(c, t);
        res := t AT TIME ZONE tz;
        EXIT WHEN res > after;
        t := t + interval '1 minute';
    END LOOP;
    RETURN res;
END
$$;

-- _every_next(due, every, tz, after): the first time due + k * every (k >= 1)
-- after "after".  Calendar parts (days, months) of every follow the wall
-- clock of tz; a period of hours, minutes and seconds is exact.
CREATE FUNCTION pgque._every_next(due timestamptz, every interval, tz text, after timestamptz) RETURNS timestamptz
LANGUAGE plpgsql STABLE AS $$
DECLARE
    t timestamptz := due;
BEGIN
    IF date_trunc('day', every) = interval '0' THEN
        RETURN due + every * greatest(floor(extract(epoch FROM after - due) / extract(epoch FROM every)) + 1, 1)::double precision;
    END IF;
    -- At least a day per step: as many steps as days the schedule was missed.
    LOOP
        t := ((t AT TIME ZONE tz) + every) AT TIME ZONE tz;
        EXIT WHEN t > after;
    END LOOP;
    RETURN t;
END
$$;

-- _check_time_zone(tz): PQ006 unless PostgreSQL knows the time zone.
CREATE FUNCTION pgque._check_time_zone(tz text) RETURNS void
LANGUAGE plpgsql STABLE AS $$
BEGIN
    IF tz IS NULL THEN
        PERFORM pgque._invalid('time zone', 'must not be NULL');
    END IF;
    PERFORM now() AT TIME ZONE tz;
EXCEPTION WHEN invalid_parameter_value THEN
    PERFORM pgque._invalid('time zone', format('%s is not a time zone name PostgreSQL knows (see pg_timezone_names)',
                                               pgque._quote(tz)));
END
$$;

-- _schedule_insert(name, queue_name, type, payload, every, cron, tz,
-- first_run): insert a checked schedule.  Returns first_run.
-- Errors: PQ001, PQ015 (the name is taken in the queue's namespace).
CREATE FUNCTION pgque._schedule_insert(schedule_name text, queue_name text, type text, payload text,
                                       every interval, cron text, tz text, first_run timestamptz) RETURNS timestamptz
LANGUAGE plpgsql AS $$
DECLARE
    qid int := (pgque._queue(queue_name)).queue_id;
    ns  text := coalesce(pgque._namespace(queue_name), '');
BEGIN
    INSERT INTO pgque.schedule (sched_name, sched_queue, sched_namespace, sched_type, sched_payload,
                                sched_every, sched_cron, sched_time_zone, sched_next_run)
    VALUES (schedule_name, qid, ns, type, payload, every, cron, tz, first_run)
    ON CONFLICT (sched_namespace, sched_name) DO NOTHING;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'pgque: schedule % already exists%', quote_literal(schedule_name),
            CASE WHEN ns = '' THEN '' ELSE format(' in namespace %L', ns) END USING ERRCODE = 'PQ015';
    END IF;
    RETURN first_run;
END
$$;

-- _schedule_check(schedule_name, queue_name, type, tz): the argument checks
-- both create_schedule forms make first.  Errors: PQ001, PQ006.
CREATE FUNCTION pgque._schedule_check(schedule_name text, queue_name text, type text, tz text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque._check_name('schedule', schedule_name, 63);
    PERFORM pgque._queue(queue_name);
    IF type IS NULL THEN
        PERFORM pgque._invalid('event type', 'must not be NULL');
    END IF;
    PERFORM pgque._check_time_zone(tz);
END
$$;

-- create_schedule(schedule_name, queue_name, type, payload, every
-- [, time_zone, start_at]): send an event of this type and payload (NULL
-- allowed) to the queue every interval.  every is 1 second to 100 years,
-- whole seconds, and its parts (months, days, time) are not negative; days
-- and months follow the wall clock of time_zone (default UTC).  The first
-- run is start_at (rounded down to the second; finite, within 100 years of
-- now) or, when that has passed, the first start_at + k * every after now;
-- without start_at, now + every.
-- Returns the first due time.
-- Errors: PQ001 unknown queue, PQ006 bad argument, PQ015 schedule exists.
CREATE FUNCTION pgque.create_schedule(schedule_name text, queue_name text, type text, payload text,
                                      every interval, time_zone text DEFAULT 'UTC',
                                      start_at timestamptz DEFAULT NULL) RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    first timestamptz;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._schedule_check(schedule_name, queue_name, type, time_zone);
    PERFORM pgque._check_interval('every', every, interval '1 second', pgque._max_span());
    IF date_trunc('month', every) < interval '0'
       OR date_trunc('day', every) - date_trunc('month', every) < interval '0'
       OR every - date_trunc('day', every) < interval '0' THEN
        PERFORM pgque._invalid('every', format('%L has a negative part', every));
    ELSIF extract(microseconds FROM every) % 1000000 <> 0 THEN
        PERFORM pgque._invalid('every', format('%L is not a whole number of seconds', every));
    END IF;
    -- Bounded both ways: the first run after now is found by stepping from
    -- start_at (a day or more per step for calendar periods).
    IF start_at IS NOT NULL THEN
        PERFORM pgque._check_time('start_at', start_at, pgque._max_span(), pgque._max_span());
    END IF;
    first := date_trunc('second', coalesce(start_at, now() + every));
    IF first < now() THEN
        first := pgque._every_next(first, every, time_zone, now());
    END IF;
    RETURN pgque._schedule_insert(schedule_name, queue_name, type, payload, every, NULL, time_zone, first);
END
$$;

CREATE FUNCTION pgque.create_schedule(schedule_name text, queue_name text, type text, payload jsonb,
                                      every interval, time_zone text DEFAULT 'UTC',
                                      start_at timestamptz DEFAULT NULL) RETURNS timestamptz
LANGUAGE sql AS $$
    SELECT pgque.create_schedule(schedule_name, queue_name, type, payload::pg_catalog.text, every, time_zone, start_at)
$$;

-- create_schedule(schedule_name, queue_name, type, payload, cron
-- [, time_zone]): send an event of this type and payload (NULL allowed) to
-- the queue whenever the 5-field cron expression matches the wall clock of
-- time_zone (default UTC); see _cron_parse for the syntax.  An untyped
-- literal in fifth place is taken as cron: pass an interval as
-- every => '...' or with ::interval.
-- Returns the first due time.
-- Errors: PQ001 unknown queue, PQ006 bad argument or cron expression,
-- PQ015 schedule exists.
CREATE FUNCTION pgque.create_schedule(schedule_name text, queue_name text, type text, payload text,
                                      cron text, time_zone text DEFAULT 'UTC') RETURNS timestamptz
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    c   pgque._cron;
    msg text;
BEGIN
    PERFORM pgque._authorize(queue_name, 'admin');
    PERFORM pgque._schedule_check(schedule_name, queue_name, type, time_zone);
    BEGIN
        c := pgque._cron_parse(cron);
    EXCEPTION WHEN SQLSTATE 'PQ006' THEN
        GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
        -- '5 minutes' lands here when the caller meant an interval.
        IF cron !~ '^\s*@' AND cardinality(regexp_split_to_array(btrim(cron, E' \t\r\n'), '\s+')) <> 5 THEN
            RAISE EXCEPTION '%', msg USING ERRCODE = 'PQ006',
                HINT = format('For a period, pass every => %s (or a value of type interval).', pgque._quote(cron));
        END IF;
        RAISE;
    END;
    RETURN pgque._schedule_insert(schedule_name, queue_name, type, payload, NULL, btrim(cron, E' \t\r\n'),
                                  time_zone, pgque._cron_next(c, now(), time_zone));
END
$$;

CREATE FUNCTION pgque.create_schedule(schedule_name text, queue_name text, type text, payload jsonb,
                                      cron text, time_zone text DEFAULT 'UTC') RETURNS timestamptz
LANGUAGE sql AS $$
    SELECT pgque.create_schedule(schedule_name, queue_name, type, payload::pg_catalog.text, cron, time_zone)
$$;

-- drop_schedule(schedule_name [, if_exists [, queue_name]]): delete the
-- schedule of that name that the session may administer.  Names are unique
-- per namespace, so a session that administers several namespaces may find
-- one name in more than one: queue_name then says which (the queue the
-- schedule sends to).  Events it already sent stay in the queue.
-- Returns 1 when dropped, 0 when there was none and if_exists is true.
-- Errors: PQ006 invalid name, or several schedules of that name and no
-- queue_name; PQ016 unknown schedule and if_exists is false; with
-- queue_name, those of every function on a queue (42501, PQ001).
CREATE FUNCTION pgque.drop_schedule(schedule_name text, if_exists boolean DEFAULT false,
                                    queue_name text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    qid    int;
    ids    int[];
    queues text[];
BEGIN
    IF drop_schedule.queue_name IS NOT NULL THEN
        PERFORM pgque._authorize(drop_schedule.queue_name, 'admin');
        qid := (pgque._queue(drop_schedule.queue_name)).queue_id;
    END IF;
    -- Another tenant's schedule is as unknown as one that does not exist.
    SELECT array_agg(s.sched_id), array_agg(q.queue_name ORDER BY q.queue_name) INTO ids, queues
      FROM pgque.schedule s JOIN pgque.queue q ON q.queue_id = s.sched_queue
     WHERE s.sched_name = schedule_name AND (qid IS NULL OR s.sched_queue = qid)
       AND pgque._may(q.queue_name, 'admin');
    IF cardinality(ids) > 1 THEN
        PERFORM pgque._invalid('schedule name', format('%L names a schedule in each of several namespaces '
            '(on queues %s); pass queue_name => the one to drop', schedule_name, array_to_string(queues, ', ')));
    END IF;
    DELETE FROM pgque.schedule WHERE sched_id = ids[1];
    IF FOUND THEN
        RETURN 1;
    END IF;
    PERFORM pgque._check_name('schedule', schedule_name, 63);
    IF coalesce(if_exists, false) THEN
        RETURN 0;
    END IF;
    RAISE EXCEPTION 'pgque: schedule % does not exist', quote_literal(schedule_name) USING ERRCODE = 'PQ016';
END
$$;

-- list_schedules([queue_name [, namespace]]): every schedule (of one queue,
-- of a namespace's queues) that the session may inspect, by name (and
-- queue: one name may be used in several namespaces).
--   every / cron   the period or the cron expression (the other is NULL)
--   next_run       the next due time
--   last_run       the due time of the last event sent, last_fired_at when
--                  it was sent, last_event_id its id; runs counts events sent
-- Errors: PQ001 unknown queue_name; PQ006 invalid queue name or namespace.
CREATE FUNCTION pgque.list_schedules(queue_name text DEFAULT NULL, namespace text DEFAULT NULL)
RETURNS TABLE (schedule_name text, queue text, type text, payload text, every interval, cron text,
               time_zone text, next_run timestamptz, last_run timestamptz, last_fired_at timestamptz,
               last_event_id bigint, runs bigint, created_at timestamptz)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    qid int;
BEGIN
    IF list_schedules.queue_name IS NOT NULL THEN
        qid := (pgque._queue(list_schedules.queue_name)).queue_id;
    END IF;
    IF list_schedules.namespace IS NOT NULL THEN
        PERFORM pgque._check_namespace(list_schedules.namespace);
    END IF;
    RETURN QUERY
    SELECT s.sched_name, q.queue_name, s.sched_type, s.sched_payload, s.sched_every, s.sched_cron,
           s.sched_time_zone, s.sched_next_run, s.sched_last_run, s.sched_last_fired, s.sched_last_event,
           s.sched_runs, s.sched_created_at
      FROM pgque.schedule s JOIN pgque.queue q ON q.queue_id = s.sched_queue
     WHERE (qid IS NULL OR s.sched_queue = qid)
       AND (list_schedules.namespace IS NULL OR pgque._namespace(q.queue_name) = list_schedules.namespace)
       AND pgque._may(q.queue_name, 'inspect')
     ORDER BY s.sched_name, q.queue_name;
END
$$;

-- _run_schedules(at): fire every schedule due at "at" (maint() passes
-- now(); tests pass other times), once each, and move it to its next due
-- time after "at".  Each firing is a subtransaction: a schedule whose event
-- cannot be sent (say, a trigger refuses it) is skipped with a warning and
-- tried again by the next call, without holding up the others or the rest
-- of maint().
-- Returns the number of events sent.
CREATE FUNCTION pgque._run_schedules(at timestamptz) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    id   int;
    name text;
    s    record;
    ev   bigint;
    n    int := 0;
BEGIN
    FOR id, name IN SELECT sched_id, sched_name FROM pgque.schedule WHERE sched_next_run <= at
                     ORDER BY sched_next_run, sched_id LOOP
        BEGIN
            -- The due time is checked again on the locked row: a concurrent
            -- call that fired it and committed has moved it past "at".  The
            -- queue's row is share-locked so that drop_queue waits for us;
            -- while a drop_queue holds it, the schedule is about to go.
            SELECT x.*, q.queue_name INTO s
              FROM pgque.schedule x JOIN pgque.queue q ON q.queue_id = x.sched_queue
             WHERE x.sched_id = id AND x.sched_next_run <= at
               FOR UPDATE OF x SKIP LOCKED FOR KEY SHARE OF q SKIP LOCKED;
            CONTINUE WHEN NOT FOUND;
            ev := pgque.send(s.queue_name, s.sched_type, s.sched_payload, s.sched_name,
                             to_char(s.sched_next_run AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'));
            UPDATE pgque.schedule
               SET sched_next_run = CASE WHEN s.sched_cron IS NOT NULL
                                         THEN pgque._cron_next(pgque._cron_parse(s.sched_cron), at, s.sched_time_zone)
                                         ELSE pgque._every_next(s.sched_next_run, s.sched_every, s.sched_time_zone, at)
                                    END,
                   sched_last_run = s.sched_next_run, sched_last_fired = at, sched_last_event = ev,
                   sched_runs = s.sched_runs + 1
             WHERE sched_id = id;
            n := n + 1;
        EXCEPTION WHEN OTHERS THEN
            RAISE WARNING 'pgque: schedule % was not fired: %', quote_literal(name), SQLERRM;
        END;
    END LOOP;
    RETURN n;
END
$$;
