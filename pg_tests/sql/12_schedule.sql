-- 12_schedule: schedules (periodic events).  The cron parser (valid and
-- every kind of invalid expression), next-run computation (month ends, leap
-- years, day-of-month/day-of-week rules, a time zone with DST), interval
-- schedules, create/drop/list and their errors, firing by maint() exactly
-- once per due time (also from concurrent sessions), the missed-run policy,
-- drop_queue, and permissions.  Firing times are injected through
-- pgque._run_schedules(at) so nothing waits for the clock.  Queues of this
-- file are named q12*, schedules s12*.

-- Times print in UTC; results must not depend on the session's time zone
-- (checked below), but printing them must be stable.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO';
SET IntervalStyle = 'postgres';

-- pg_temp.next(expr, after, tz): the first run after "after".
CREATE FUNCTION pg_temp.next(expr text, after timestamptz, tz text DEFAULT 'UTC') RETURNS timestamptz
LANGUAGE sql AS $$ SELECT pgque._cron_next(pgque._cron_parse(expr), after, tz) $$;
-- pg_temp.naive(expr, after, horizon): the same, found by testing every
-- minute up to horizon, with the cron rules written out independently.
CREATE FUNCTION pg_temp.naive(expr text, after timestamptz, horizon interval) RETURNS timestamptz
LANGUAGE sql AS $$
    SELECT min(m)
      FROM pgque._cron_parse(expr) c,
           generate_series(date_trunc('minute', after) + interval '1 minute', after + horizon, interval '1 minute') m
     WHERE extract(minute FROM m)::int = ANY (c.minutes)
       AND extract(hour FROM m)::int = ANY (c.hours)
       AND extract(month FROM m)::int = ANY (c.months)
       AND CASE WHEN c.day_or
                THEN extract(day FROM m)::int = ANY (c.days) OR extract(dow FROM m)::int = ANY (c.weekdays)
                ELSE extract(day FROM m)::int = ANY (c.days) AND extract(dow FROM m)::int = ANY (c.weekdays) END
$$;
-- pg_temp.events(queue, consumer): tick, then receive and ack everything.
CREATE FUNCTION pg_temp.events(q text, c text)
RETURNS TABLE (type text, payload text, schedule text, due text) LANGUAGE plpgsql AS $$
DECLARE
    m pgque.message;
    b bigint;
BEGIN
    LOOP
        b := NULL;
        FOR m IN SELECT * FROM pgque.receive(q, c, 100) LOOP
            type := m.type; payload := m.payload; schedule := m.extra1; due := m.extra2;
            RETURN NEXT;
            b := m.batch_id;
        END LOOP;
        EXIT WHEN b IS NULL;
        PERFORM pgque.ack(b);
    END LOOP;
END
$$;

---------------------------------------------------------------------------
-- The cron parser: valid expressions and what they allow
---------------------------------------------------------------------------
SELECT e AS expr, array_to_string(c.minutes, ',') AS minutes, array_to_string(c.hours, ',') AS hours,
       array_to_string(c.days, ',') AS days, array_to_string(c.months, ',') AS months,
       array_to_string(c.weekdays, ',') AS weekdays, c.day_or
  FROM unnest(ARRAY[
        '* * * * *',
        '0 0 1 1 *',
        '*/15 9-17 * * mon-fri',
        '5,10,15-20,50-59/3 */6 1-31/10 */4 *',
        '0 12 * JAN,Mar-may,DEC Sun',
        '0 0 * * 0', '0 0 * * 7', '0 0 * * 5-7', '0 0 * * SAT,sun', '0 0 * * */2',
        '0 0 13 * fri',
        '0 0 */2 * fri',
        '  1   2\t3 4   5  ',
        '0 0 29 2 *',
        '59 23 31 dec *',
        '0 0 01 01 *',
        '@hourly', '@DAILY', '@midnight', '@weekly', '@monthly', '@yearly', '@annually'
       ]) e, pgque._cron_parse(replace(e, '\t', E'\t')) c;

---------------------------------------------------------------------------
-- The cron parser: every kind of invalid expression is PQ006, naming the
-- field and the value
---------------------------------------------------------------------------
SELECT e AS expr, test.err(format('SELECT pgque._cron_parse(%L)', e)) AS error
  FROM unnest(ARRAY[
        '', '   ', '* * * *', '* * * * * *', '*',
        '60 * * * *', '-1 * * * *', '* 24 * * *', '* * 0 * *', '* * 32 * *', '* * * 0 *', '* * * 13 *',
        '* * * * 8', '99999999999 * * * *',
        '5-2 * * * *', '* * * dec-jan *', '* * * * sat-sun',
        '*/0 * * * *', '1-5/0 * * * *', '*/ * * * *', '*/x * * * *', '5/15 * * * *', '*/5/2 * * * *',
        '1,,2 * * * *', ',1 * * * *', '1, * * * *',
        '*-5 * * * *', '1-2-3 * * * *', 'x * * * *', '* * * foo *', '* * * * funday', '* * * mon *', '* * * * jan',
        '1.5 * * * *', '* * L * *', '? * * * *',
        '@often', '@reboot',
        '30 2 31 2 *', '0 0 30,31 feb *', '0 0 31 apr,jun,sep,nov *'
       ]) e;
SELECT test.err('SELECT pgque._cron_parse(NULL)');

---------------------------------------------------------------------------
-- Next runs
---------------------------------------------------------------------------
-- month ends, year ends, leap years (2100 is not one), ranges with steps
SELECT expr, after, pg_temp.next(expr, after) AS next
  FROM (VALUES ('0 0 31 * *', '2026-04-15 12:00Z'::timestamptz),  -- skips April (30 days)
               ('0 0 30 * *', '2026-01-31 00:00Z'),                -- skips February
               ('59 23 * * *', '2026-02-28 23:59Z'),              -- to March 1st at 23:59
               ('0 0 1 1 *', '2026-12-31 23:59:30Z'),
               ('* * * * *', '2026-12-31 23:59:30Z'),              -- to the next year
               ('* * * * *', '2026-06-01 10:00:00Z'),              -- strictly after: 10:01
               ('0 12 29 2 *', '2026-01-01 00:00Z'),               -- next leap year
               ('0 12 29 2 *', '2028-02-29 12:00Z'),               -- strictly after: four years on
               ('0 12 29 2 *', '2096-03-01 00:00Z'),               -- 2100 skipped: eight years on
               ('10-50/20 * * * *', '2026-06-01 10:51Z'),
               ('0 0 * * 0', '2026-06-01 00:00Z'),                 -- June 1st 2026 is a Monday
               ('0 0 * * 7', '2026-06-01 00:00Z'),
               ('0 9 * dec mon', '2026-06-01 00:00Z'),
               ('@monthly', '2026-01-31 00:00Z'),
               ('@yearly', '2026-06-01 00:00Z')) v(expr, after);
-- day of month and day of week: when both are restricted, either matches
-- (13 February 2026 is a Friday, 6 February too); when one starts with "*",
-- both must (Vixie cron's rule, as in pg_cron)
SELECT expr, pg_temp.next(expr, '2026-02-01 00:00Z') AS next, to_char(pg_temp.next(expr, '2026-02-01 00:00Z'), 'Dy') AS dow
  FROM unnest(ARRAY['0 0 13 * fri', '0 0 20 * fri', '0 0 13 * *', '0 0 * * fri', '0 0 */2 * fri', '0 0 1-31 * fri',
                    '0 0 */10 2 1']) expr;
-- the walk agrees with a minute-by-minute search, from many starting points
SELECT count(*) AS checked,
       count(*) FILTER (WHERE n IS NULL) AS not_found,
       count(*) FILTER (WHERE pg_temp.next(expr, after) IS DISTINCT FROM n) AS wrong
  FROM unnest(ARRAY['* * * * *', '*/7 * * * *', '0 */5 * * *', '15,45 9-17 * * mon-fri', '0 0 13 * fri',
                    '0 0 */2 * fri', '30 23 28-31 * *', '0 0 * * 0', '59 23 * * sat,sun', '0 12 1,15 * 3']) expr,
       generate_series('2026-01-27 13:37:30Z'::timestamptz, '2026-03-05Z', interval '9 days 5 hours 11 minutes') after,
       pg_temp.naive(expr, after, interval '40 days') n;
-- the session's time zone plays no part
SET TimeZone = 'America/New_York';
SELECT pg_temp.next('0 9 * * *', '2026-03-08 12:00Z') = '2026-03-09 09:00Z' AS utc_schedule,
       pgque._every_next('2026-03-07 09:00Z', '1 day', 'UTC', '2026-03-08 12:00Z') = '2026-03-09 09:00Z' AS utc_interval;
SET TimeZone = 'UTC';

-- a time zone with DST: 09:00 in Berlin is 08:00 UTC in winter, 07:00 in
-- summer; 02:30 does not exist on 29 March 2026 (runs at 03:30, as
-- PostgreSQL converts it) and occurs twice on 25 October (runs once)
SELECT expr, after, pg_temp.next(expr, after, 'Europe/Berlin') AS next
  FROM (VALUES ('0 9 * * *', '2026-03-28 12:00Z'::timestamptz),
               ('0 9 * * *', '2026-03-29 12:00Z'),
               ('30 2 * * *', '2026-03-28 12:00Z'),
               ('30 2 * * *', '2026-10-24 12:00Z'),
               ('30 2 * * *', '2026-10-25 01:30Z'),
               ('*/20 2 * * *', '2026-10-25 00:40Z'),  -- 02:40 summer time: 02:00..02:40 come again in winter time
               ('*/20 2 * * *', '2026-10-25 01:40Z'),
               ('0 0 1 * *', '2026-06-15 00:00Z')) v(expr, after);
-- every run of '*/30 * * * *' through both changes: strictly increasing
-- instants, each local time once (02:xx twice on 25 October in PostgreSQL's
-- reading is once; 29 March has no 02:xx)
WITH RECURSIVE r(n, t) AS (
    SELECT 1, pg_temp.next('*/30 * * * *', '2026-03-28 23:00Z', 'Europe/Berlin')
    UNION ALL
    SELECT n + 1, pg_temp.next('*/30 * * * *', t, 'Europe/Berlin') FROM r WHERE n < 10)
SELECT n, t, to_char(t AT TIME ZONE 'Europe/Berlin', 'HH24:MI') AS local FROM r;
WITH RECURSIVE r(n, t) AS (
    SELECT 1, pg_temp.next('*/30 * * * *', '2026-10-24 23:00Z', 'Europe/Berlin')
    UNION ALL
    SELECT n + 1, pg_temp.next('*/30 * * * *', t, 'Europe/Berlin') FROM r WHERE n < 8)
SELECT n, t, to_char(t AT TIME ZONE 'Europe/Berlin', 'HH24:MI') AS local FROM r;

-- interval periods: exact for time, wall clock for days and months
SELECT every, tz, pgque._every_next('2026-03-28 08:00Z', every, tz, after) AS next
  FROM (VALUES ('1 hour'::interval, 'UTC', '2026-03-28 08:00Z'::timestamptz),
               ('1 hour', 'UTC', '2026-03-28 13:30Z'),              -- missed five: the first after
               ('90 seconds', 'UTC', '2026-03-28 08:00:01Z'),
               ('1 day', 'UTC', '2026-03-28 08:00Z'),
               ('1 day', 'Europe/Berlin', '2026-03-28 08:00Z'),     -- 09:00 local stays 09:00
               ('1 day', 'Europe/Berlin', '2026-04-02 00:00Z'),
               ('1 month', 'UTC', '2026-04-30 00:00Z')) v(every, tz, after);

---------------------------------------------------------------------------
-- create_schedule, list_schedules, drop_schedule
---------------------------------------------------------------------------
SELECT pgque.create_queue('q12');
SELECT pgque.create_queue('q12_b');
SELECT pgque.subscribe('q12', 'c');
SELECT pgque.subscribe('q12_b', 'c');
-- a cron schedule returns its first run, the next match after now
SELECT pgque.create_schedule('s12_cron', 'q12', 'report', '{"kind": "daily"}', '0 3 * * *')
     = pg_temp.next('0 3 * * *', now()) AS first_run;
-- positional cron text, named every, an interval value; jsonb and NULL payloads
SELECT pgque.create_schedule('s12_berlin', 'q12', 'report', '{"kind": "berlin"}'::jsonb, '@daily', 'Europe/Berlin')
     = pg_temp.next('0 0 * * *', now(), 'Europe/Berlin') AS first_run;
SELECT pgque.create_schedule('s12_every', 'q12', 'ping', NULL, every => '10 minutes')
     = date_trunc('second', now() + interval '10 minutes') AS first_run;
SELECT pgque.create_schedule('s12_b', 'q12_b', 'ping', '{}'::jsonb, '1 hour'::interval) > now() AS first_run_later;
-- start_at: a future one is the first run; a past one anchors the grid
SELECT pgque.create_schedule('s12_start', 'q12', 'ping', 'x', every => '1 hour', start_at => '2099-01-01 00:00:30.75Z');
SELECT pgque.create_schedule('s12_anchor', 'q12', 'ping', 'x', every => '1 hour', start_at => '2020-01-01 00:17Z')
     = date_trunc('hour', now() - interval '17 minutes') + interval '1 hour 17 minutes' AS first_run_on_grid;
SELECT schedule_name, queue, type, payload, every, cron, time_zone, last_run, last_fired_at, last_event_id, runs,
       created_at <= now() AS created_before
  FROM pgque.list_schedules();
SELECT schedule_name FROM pgque.list_schedules('q12_b');

-- errors: the schedule exists (PQ015), an unknown queue (PQ001), bad names,
-- NULLs, bad periods, bad cron expressions, bad time zones (PQ006); nothing
-- is created by a failed call
SELECT test.err($$SELECT pgque.create_schedule('s12_cron', 'q12', 't', 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_cron', 'q12', 't', 'x', every => '1 hour')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12_none', 't', 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12_none', 't', 'x', every => '1 hour')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12 x', 'q12', 't', 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('', 'q12', 't', 'x', '@hourly')$$);
SELECT test.err(format('SELECT pgque.create_schedule(%L, %L, %L, %L, %L)', repeat('s', 64), 'q12', 't', 'x', '@hourly'));
SELECT test.err($$SELECT pgque.create_schedule(NULL, 'q12', 't', 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', NULL, 't', 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', NULL, 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', cron => NULL)$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', every => NULL)$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', '@hourly', NULL)$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', '@hourly', 'Mars/Olympus_Mons')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', every => '1 hour', time_zone => 'nowhere')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', '61 * * * *')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_x', 'q12', 't', 'x', '30 2 31 2 *')$$);
SELECT test.err(format('SELECT pgque.create_schedule(%L, %L, %L, %L, every => %L)', 's12_x', 'q12', 't', 'x', e)) AS bad_every
  FROM unnest(ARRAY['0', '-1 hour', '0.5 seconds', '1.5 seconds', '1 day -1 hour', '1 month -40 days', '-1 month 40 days']) e;
-- an untyped literal in fifth place is a cron expression; the hint says
-- how to pass a period
DO $$
BEGIN
    PERFORM pgque.create_schedule('s12_x', 'q12', 't', 'x', '5 minutes');
EXCEPTION WHEN SQLSTATE 'PQ006' THEN
    DECLARE
        hint text;
    BEGIN
        GET STACKED DIAGNOSTICS hint = PG_EXCEPTION_HINT;
        RAISE NOTICE '% / hint: %', SQLERRM, hint;
    END;
END
$$;
SELECT count(*) AS schedules, count(*) FILTER (WHERE schedule_name = 's12_x') AS failed_ones
  FROM pgque.list_schedules();
SELECT test.err($$SELECT * FROM pgque.list_schedules('q12_none')$$);
SELECT test.err($$SELECT * FROM pgque.list_schedules('q12 none')$$);

-- drop_schedule: 1; unknown PQ016, or 0 with if_exists; bad names PQ006
SELECT pgque.drop_schedule('s12_start');
SELECT test.err($$SELECT pgque.drop_schedule('s12_start')$$);
SELECT pgque.drop_schedule('s12_start', if_exists => true);
SELECT test.err($$SELECT pgque.drop_schedule('s12 start')$$);
SELECT test.err($$SELECT pgque.drop_schedule(NULL)$$);
SELECT test.err($$SELECT pgque.drop_schedule(NULL, true)$$);

---------------------------------------------------------------------------
-- Firing: once per due time, through send (transactional, ticked like any
-- event), with the schedule's name in extra1 and the due time in extra2
---------------------------------------------------------------------------
SELECT pgque.drop_schedule(schedule_name) FROM pgque.list_schedules() WHERE schedule_name <> 's12_cron';
SELECT pgque.create_schedule('s12_hourly', 'q12', 'tick', '{"n": 1}', every => '1 hour', start_at => '2099-01-01 00:00Z');
SELECT pgque.create_schedule('s12_minutes', 'q12', 'tick', 'm', '*/15 * * * *') > now() AS first_run_later;
-- pin the due times to known values (as if created earlier)
UPDATE pgque.schedule SET sched_next_run = '2026-06-01 10:00Z' WHERE sched_name = 's12_hourly';
UPDATE pgque.schedule SET sched_next_run = '2026-06-01 10:15Z' WHERE sched_name = 's12_minutes';
UPDATE pgque.schedule SET sched_next_run = '2026-06-02 03:00Z' WHERE sched_name = 's12_cron';
-- nothing is due before its time
SELECT pgque._run_schedules('2026-06-01 09:59:59Z') AS fired;
-- a rolled-back firing sends nothing and moves nothing
BEGIN;
SELECT pgque._run_schedules('2026-06-01 10:00Z') AS fired;
ROLLBACK;
SELECT schedule_name, next_run, runs FROM pgque.list_schedules() ORDER BY 1;
-- due: fired once; the same moment again fires nothing
SELECT pgque._run_schedules('2026-06-01 10:00Z') AS fired;
SELECT pgque._run_schedules('2026-06-01 10:00Z') AS fired;
SELECT pgque._run_schedules('2026-06-01 10:14:59Z') AS fired;
SELECT pgque._run_schedules('2026-06-01 10:15Z') AS fired;
SELECT pgque.force_tick('q12') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.events('q12', 'c');
SELECT schedule_name, next_run, last_run, last_fired_at, runs, last_event_id IS NOT NULL AS has_event
  FROM pgque.list_schedules() ORDER BY 1;

-- missed runs: however many were missed, one event, for the earliest
-- missed due time; the next run is the first due time after now, on the
-- schedule's own grid (hourly at :00, every 15 minutes)
SELECT pgque._run_schedules('2026-06-03 17:47Z') AS fired;
SELECT pgque.force_tick('q12') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.events('q12', 'c');
SELECT schedule_name, next_run, last_run, last_fired_at, runs FROM pgque.list_schedules() ORDER BY 1;

-- a schedule whose event cannot be sent is skipped with a warning and stays
-- due; the others fire; the next call fires it
CREATE FUNCTION test.refuse_boom() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'no booms today';
END
$$;
CREATE TRIGGER t12_refuse BEFORE INSERT ON pgque.event FOR EACH ROW
    WHEN (NEW.ev_type = 'boom') EXECUTE FUNCTION test.refuse_boom();
UPDATE pgque.schedule SET sched_type = 'boom' WHERE sched_name = 's12_hourly';
SELECT pgque._run_schedules('2026-06-03 18:00Z') AS fired;
SELECT schedule_name, next_run, runs FROM pgque.list_schedules() ORDER BY 1;
DROP TRIGGER t12_refuse ON pgque.event;
DROP FUNCTION test.refuse_boom();
SELECT pgque._run_schedules('2026-06-03 18:00Z') AS fired;
SELECT pgque.force_tick('q12') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.events('q12', 'c');
UPDATE pgque.schedule SET sched_type = 'tick' WHERE sched_name = 's12_hourly';

---------------------------------------------------------------------------
-- maint() fires what is due now, once, also when sessions race
---------------------------------------------------------------------------
UPDATE pgque.schedule SET sched_next_run = now() - interval '1 minute';
SELECT pgque.maint() >= 3 AS did_work;
SELECT count(*) AS due_now FROM pgque.list_schedules() WHERE next_run <= now();
SELECT pgque.force_tick('q12') IS NOT NULL AS ticked;
SELECT schedule, type FROM pg_temp.events('q12', 'c') ORDER BY 1;

-- a session that fired a schedule and has not committed holds it: another
-- session fires nothing, before and after the commit
UPDATE pgque.schedule SET sched_next_run = '2026-07-01 00:00Z';
SELECT dblink_connect('s12a', 'dbname=' || current_database());
SELECT dblink_exec('s12a', 'BEGIN');
SELECT * FROM dblink('s12a', $$SELECT pgque._run_schedules('2026-07-01 00:00Z')$$) AS t(fired int);
SELECT pgque._run_schedules('2026-07-01 00:00Z') AS fired_meanwhile;
SELECT dblink_exec('s12a', 'COMMIT');
SELECT pgque._run_schedules('2026-07-01 00:00Z') AS fired_after_commit;
SELECT pgque.force_tick('q12') IS NOT NULL AS ticked;
SELECT schedule, due FROM pg_temp.events('q12', 'c') ORDER BY 1;

-- 60 schedules due, three sessions running maint() at the same time: each
-- schedule fires exactly once
SELECT count(pgque.create_schedule(format('s12_race_%s', i), 'q12_b', 'race', i::text, every => '1 hour'))
  FROM generate_series(1, 60) i;
UPDATE pgque.schedule SET sched_next_run = now() - interval '1 second' WHERE sched_name LIKE 's12\_race\_%';
SELECT dblink_connect('s12b', 'dbname=' || current_database());
SELECT dblink_connect('s12c', 'dbname=' || current_database());
SELECT dblink_send_query(s, 'SELECT pgque.maint()') FROM unnest(ARRAY['s12a', 's12b', 's12c']) s;
SELECT count(*) AS sessions_done FROM unnest(ARRAY['s12a', 's12b', 's12c']) s,
       dblink_get_result(s) AS t(n int);
SELECT count(*) FROM unnest(ARRAY['s12a', 's12b', 's12c']) s, dblink_get_result(s) AS t(n int);
SELECT count(*) AS schedules, sum(runs) AS runs, count(*) FILTER (WHERE next_run <= now()) AS still_due
  FROM pgque.list_schedules('q12_b') WHERE schedule_name LIKE 's12\_race\_%';
SELECT pgque.force_tick('q12_b') IS NOT NULL AS ticked;
SELECT count(*) AS events, count(DISTINCT schedule) AS schedules, count(DISTINCT payload) AS payloads
  FROM pg_temp.events('q12_b', 'c') WHERE type = 'race';
SELECT dblink_disconnect(s) FROM unnest(ARRAY['s12a', 's12b', 's12c']) s;

---------------------------------------------------------------------------
-- drop_queue drops the queue's schedules with it
---------------------------------------------------------------------------
SELECT count(*) AS schedules_of_q12_b FROM pgque.list_schedules('q12_b');
SELECT pgque.drop_queue('q12_b', force => true);
SELECT count(*) AS schedules_left FROM pgque.schedule s
 WHERE NOT EXISTS (SELECT 1 FROM pgque.queue q WHERE q.queue_id = s.sched_queue);
SELECT schedule_name, queue FROM pgque.list_schedules() ORDER BY 1;
-- a new queue by the same name has none
SELECT pgque.create_queue('q12_b');
SELECT count(*) AS schedules_of_new_q12_b FROM pgque.list_schedules('q12_b');
SELECT pgque.drop_queue('q12_b');

---------------------------------------------------------------------------
-- Permissions: admin creates and drops; reader and writer list; nobody
-- else anything; _run_schedules is internal
---------------------------------------------------------------------------
CREATE ROLE t12_reader;
CREATE ROLE t12_writer;
CREATE ROLE t12_admin;
CREATE ROLE t12_nobody;
GRANT pgque_reader TO t12_reader;
GRANT pgque_writer TO t12_writer;
GRANT pgque_admin TO t12_admin;
GRANT USAGE ON SCHEMA test TO t12_reader, t12_writer, t12_admin, t12_nobody;
SET ROLE t12_admin;
SELECT pgque.create_schedule('s12_admin', 'q12', 't', 'x', '@hourly') > now() AS created;
SELECT pgque.create_schedule('s12_admin2', 'q12', 't', '{}'::jsonb, every => '1 minute') > now() AS created;
SELECT pgque.create_schedule('s12_admin3', 'q12', 't', '{}'::jsonb, '@daily') > now() AS created;
SELECT pgque.create_schedule('s12_admin4', 'q12', 't', 'x', every => '1 day') > now() AS created;
SELECT count(*) FROM pgque.list_schedules();
SELECT pgque.drop_schedule('s12_admin2');
SELECT test.err($$SELECT pgque._run_schedules(now())$$);
RESET ROLE;
SET ROLE t12_reader;
SELECT count(*) FROM pgque.list_schedules('q12');
SELECT test.err($$SELECT pgque.create_schedule('s12_r', 'q12', 't', 'x', '@hourly')$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_r', 'q12', 't', 'x', every => '1 hour')$$);
SELECT test.err($$SELECT pgque.drop_schedule('s12_admin')$$);
RESET ROLE;
SET ROLE t12_writer;
SELECT count(*) FROM pgque.list_schedules('q12');
SELECT test.err($$SELECT pgque.create_schedule('s12_w', 'q12', 't', '{}'::jsonb, '@hourly')$$);
SELECT test.err($$SELECT pgque.drop_schedule('s12_admin')$$);
RESET ROLE;
SET ROLE t12_nobody;
SELECT test.err($$SELECT * FROM pgque.list_schedules()$$);
SELECT test.err($$SELECT pgque.create_schedule('s12_n', 'q12', 't', 'x', '@hourly')$$);
RESET ROLE;
SET ROLE t12_admin;
SELECT test.err($$SELECT * FROM pgque.schedule$$);
RESET ROLE;

-- clean up
DROP OWNED BY t12_reader, t12_writer, t12_admin, t12_nobody;
DROP ROLE t12_reader, t12_writer, t12_admin, t12_nobody;
SELECT pgque.drop_queue('q12', force => true);
SELECT count(*) AS schedules_left FROM pgque.schedule;
