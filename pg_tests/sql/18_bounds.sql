-- 18_bounds: every interval, time and number a caller can set has a range
-- (docs/sql-reference.md, "Ranges"); a value outside it -- NULL where NULL
-- means nothing, negative, infinite, absurdly large -- is PQ006 naming the
-- parameter, the value and the range, never an arithmetic error of
-- PostgreSQL's (22003, 22008, 54000) or a loop.  Each bound is tried just
-- inside and just outside.  And the regressions behind it: a far-future
-- delayed event or a huge rotation period must not stop maint() or
-- ticker(); the backoff caps first; messages quote a bounded prefix of a
-- bad value.
--
-- Times relative to now() are never printed: test.state() shows only the
-- SQLSTATE (or 'ok') of the calls that quote one.

SET statement_timeout = '20s';  -- a bound that is missing must not hang the suite
-- test.val(sql): the value of a one-value query as text, or 'SQLSTATE: message'.
CREATE FUNCTION test.val(sql text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    v text;
BEGIN
    EXECUTE sql INTO v;
    RETURN coalesce(v, 'NULL');
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- test.state(sql): 'ok', or the SQLSTATE of sql's error.
CREATE FUNCTION test.state(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT left(test.err(sql), 5)
$$;

SELECT pgque.create_queue('q18');
SELECT pgque.subscribe('q18', 'c');
SELECT queue_id AS qid, queue_event_seq AS qseq FROM pgque.queue WHERE queue_name = 'q18' \gset

---------------------------------------------------------------------------
-- Queue settings: every key, each bound just inside and just outside, and
-- the values that used to get through (a rotation period of 300000 years
-- broke maint() with 22008).
---------------------------------------------------------------------------
CREATE TEMP TABLE cfg (ord serial, key text, value text);
INSERT INTO cfg (key, value)
SELECT k, v FROM unnest(ARRAY['ticker_max_lag', 'retry_backoff_base', 'retry_backoff_cap']) k,
                 unnest(ARRAY[NULL, '-1 microsecond', '0', '100 years', '100 years 1 microsecond',
                              '36001 days', '300000 years', '1 month -31 days']) v;
INSERT INTO cfg (key, value)
SELECT k, v FROM unnest(ARRAY['ticker_idle_period', 'rotation_period']) k,
                 unnest(ARRAY[NULL, '0', '1 microsecond', '100 years', '100 years 1 microsecond',
                              '300000 years', '-2 hours']) v;
INSERT INTO cfg (key, value)
SELECT k, v FROM unnest(ARRAY['ticker_max_count', 'max_retries']) k,
                 unnest(ARRAY[NULL, '-1', '0', '1', '2147483647', '2147483648', '99999999999999999999',
                              'infinity']) v;
INSERT INTO cfg (key, value)
SELECT 'retry_jitter', v FROM unnest(ARRAY[NULL, '-0.000001', '0', '1', '1.000001', 'NaN', 'infinity',
                                           '-infinity', '1e400']) v;
INSERT INTO cfg (key, value)
SELECT 'keep_unclaimed', v FROM unnest(ARRAY[NULL, 'maybe', 'off', 'on']) v;
SELECT key, value, test.err(format('SELECT pgque.set_queue_config(%L, %L, %L)', 'q18', key, value)) AS result
  FROM cfg ORDER BY ord;
-- Infinite intervals: PostgreSQL 17 parses them, older versions do not;
-- PQ006 either way.
SELECT k, v, test.state(format('SELECT pgque.set_queue_config(%L, %L, %L)', 'q18', k, v)) AS state
  FROM unnest(ARRAY['ticker_max_lag', 'rotation_period', 'retry_backoff_cap']) k,
       unnest(ARRAY['infinity', '-infinity']) v;
-- The last accepted value of each stays.
SELECT queue_ticker_max_lag, queue_ticker_idle_period, queue_rotation_period, queue_ticker_max_count,
       queue_max_retries, queue_retry_backoff_base, queue_retry_backoff_cap, keep_unclaimed
  FROM pgque.get_queue_info('q18');
SELECT pgque.set_queue_config('q18', k, v)
  FROM (VALUES ('ticker_max_lag', '0'), ('ticker_idle_period', '1 minute'), ('rotation_period', '2 hours'),
               ('ticker_max_count', '500'), ('max_retries', '5'), ('retry_backoff_base', '10 seconds'),
               ('retry_backoff_cap', '1 hour'), ('retry_jitter', '0')) s(k, v);
-- maint() goes on after the rejected rotation period (it never got stored).
SELECT pgque.maint() >= 0 AS maint_ok;

---------------------------------------------------------------------------
-- deliver_at (send_at, send_opts): finite, at most 100 years ahead; any
-- earlier finite time sends at once.  The time that used to stop maint()
-- for every queue (22003 in the wake hint) is refused; and a far-future
-- or infinite due time already stored (written by hand, or by an older
-- version) no longer breaks the delayed mover in ticker() or maint().
---------------------------------------------------------------------------
SELECT test.err($$SELECT pgque.send_at('q18', 't', 'x', '294270-01-01 00:00:00+00')$$) AS far_future;
SELECT pgque.ticker() >= 0 AS ticker_ok;
SELECT pgque.maint() >= 0 AS maint_ok;
SELECT test.err($$SELECT pgque.send_at('q18', 't', 'x', 'infinity')$$) AS infinity;
SELECT test.err($$SELECT pgque.send_at('q18', 't', 'x', '-infinity')$$) AS minus_infinity;
SELECT test.err($$SELECT pgque.send_at('q18', 't', 'x', NULL)$$) AS null_time;
SELECT test.err($$SELECT pgque.send_opts('q18', 't', 'x', deliver_at => 'infinity')$$) AS opts_infinity;
SELECT test.err($$SELECT pgque.send_opts('q18', 't', 'x', deliver_at => '-infinity')$$) AS opts_minus_infinity;
SELECT test.state($$SELECT pgque.send_at('q18', 't', 'x', now() + interval '100 years 1 microsecond')$$) AS just_outside,
       test.state($$SELECT pgque.send_at('q18', 't', 'x', now() + interval '100 years')$$) AS just_inside,
       test.state($$SELECT pgque.send_at('q18', 't', 'x', '0001-01-01 00:00:00+00')$$) AS long_ago_is_now,
       test.state($$SELECT pgque.send_opts('q18', 't', 'x', deliver_at => NULL)$$) AS opts_null_is_now;
SELECT count(*) AS parked FROM pgque.delayed WHERE dq_queue = :qid;
SELECT count(pgque.cancel_scheduled('q18', ev_id)) AS cancelled FROM pgque.delayed WHERE dq_queue = :qid;
-- Stored by hand (or by an older version): the earliest parked events are
-- due in the year 294270 and at infinity.
INSERT INTO pgque.delayed (dq_part, dq_queue, ev_id, dq_due, ev_type, ev_data)
SELECT pgque._delayed_part(), :qid, nextval(:'qseq'), due, 't', 'stored'
  FROM unnest(ARRAY['294270-01-01 00:00:00+00', 'infinity']::timestamptz[]) due;
SELECT count(nextval('pgque.delayed_count')) AS counted FROM generate_series(1, 2);
SELECT pgque.ticker() >= 0 AS ticker_ok;
SELECT pgque.maint() >= 0 AS maint_ok;
SELECT pgque.maint_delayed_events() AS published;
SELECT pgque.ticker() >= 0 AS ticker_ok;
SELECT pgque._epoch_us(t) FROM unnest(ARRAY['294276-12-31 23:59:59+00', 'infinity', '-infinity',
                                             '4713-01-01 00:00:00+00 BC']::timestamptz[]) t;
SELECT count(pgque.cancel_scheduled('q18', ev_id)) AS cancelled FROM pgque.delayed WHERE dq_queue = :qid AND ev_data = 'stored';

---------------------------------------------------------------------------
-- Unique keys: 1 to 2000 bytes (a longer one failed with 54000, the
-- btree's row size limit, when it did not compress); unique_ttl 0 to 100
-- years, and only with a key.
---------------------------------------------------------------------------
SELECT (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 100) i) AS key3200 \gset
SELECT test.state(format('SELECT pgque.send_unique(%L, %L, %L, %L)', 'q18', 't', 'x', left(:'key3200', 2000))) AS key_2000,
       test.err(format('SELECT pgque.send_unique(%L, %L, %L, %L)', 'q18', 't', 'x', left(:'key3200', 2001))) AS key_2001;
SELECT left(test.err(format('SELECT pgque.send_unique(%L, %L, %L, %L)', 'q18', 't', 'x', :'key3200')), 5) AS key_3200,
       length(test.err(format('SELECT pgque.send_unique(%L, %L, %L, %L)', 'q18', 't', 'x', :'key3200'))) < 300 AS short;
SELECT test.state(format('SELECT pgque.send_unique(%L, %L, %L, %L)', 'q18', 't', 'x', repeat('é', 1000))) AS multibyte_2000,
       test.err(format('SELECT pgque.send_unique(%L, %L, %L, %L)', 'q18', 't', 'x', repeat('é', 1001))) AS multibyte_2002;
SELECT v, test.err(format('SELECT pgque.send_unique(%L, %L, %L, %L, %L)', 'q18', 't', 'x', 'k18', v)) AS result
  FROM unnest(ARRAY['-1 microsecond', '100 years 1 microsecond', '300000 years']) v;
SELECT test.state($$SELECT pgque.send_unique('q18', 't', 'x', 'k18', '100 years')$$) AS ttl_100_years,
       test.state($$SELECT pgque.send_unique('q18', 't', 'x', 'k18b', NULL)$$) AS ttl_null_is_0,
       test.state($$SELECT pgque.send_opts('q18', 't', 'x', unique_key => 'k18c', unique_ttl => '0')$$) AS ttl_0;
SELECT test.err($$SELECT pgque.send_opts('q18', 't', 'x', unique_ttl => '1 second')$$) AS ttl_without_key;
-- per-event max_retries: 0 and up (NULL: the queue's)
SELECT v, test.err(format('SELECT pgque.send_opts(%L, %L, %L, max_retries => %s)', 'q18', 't', 'x', v)) AS result
  FROM unnest(ARRAY['-1', '0', '2147483647', 'NULL']) v;

---------------------------------------------------------------------------
-- The backoff caps first: base * 2^retries used to be computed before the
-- cap, and overflowed (22008) from retry 31 on with a base of a month, so
-- such an event could be neither retried nor dead-lettered.
---------------------------------------------------------------------------
CREATE FUNCTION test.backoff(base text, cap text, n int) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque.set_queue_config('q18', 'retry_backoff_base', base);
    PERFORM pgque.set_queue_config('q18', 'retry_backoff_cap', cap);
    RETURN test.val(format('SELECT pgque._backoff(q, %s) FROM pgque.queue q WHERE q.queue_name = %L', n, 'q18'));
END
$$;
SELECT base, cap, n, test.backoff(base, cap, n) AS backoff
  FROM (VALUES ('1 month', '1 year'), ('1 second', '100 years'), ('100 years', '100 years'), ('0', '100 years'),
               ('1 microsecond', '1 hour'), ('1 hour', '0')) c(base, cap),
       unnest(ARRAY[0, 1, 3, 30, 31, 32, 60, 1000, 2147483647]) n
 ORDER BY base, cap, n;
-- A nack that uses the queue's backoff, of an event retried 31 times.
SELECT pgque.set_queue_config('q18', 'retry_backoff_base', '1 month'),
       pgque.set_queue_config('q18', 'retry_backoff_cap', '1 year'),
       pgque.set_queue_config('q18', 'max_retries', '1000');
SELECT sub_id AS csub FROM pgque.consumer WHERE sub_queue = :qid AND sub_consumer = 'c' \gset
SELECT pgque.force_tick('q18') IS NOT NULL AS ticked;
SELECT test.drain('q18', 'c') IS NOT NULL AS drained;
INSERT INTO pgque.retry_queue (rq_sub, rq_queue, rq_due, ev_id, ev_time, ev_retry, ev_type, ev_data)
VALUES (:csub, :qid, now(), nextval(:'qseq'), now(), 31, 't', 'retried 31 times');
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q18') IS NOT NULL AS ticked;
SELECT msg_id AS m31, batch_id AS b31, retry_count FROM pgque.receive('q18', 'c', 10) \gset
SELECT :retry_count AS retry_count, test.err(format('SELECT pgque.nack(%s, %s)', :b31, :m31)) AS nack;
SELECT pgque.ack(:b31) AS ack;
SELECT ev_retry, rq_due > now() + interval '364 days' AND rq_due <= now() + interval '1 year' AS due_in_a_year
  FROM pgque.retry_queue WHERE rq_sub = :csub;
DELETE FROM pgque.retry_queue WHERE rq_sub = :csub;
SELECT pgque.set_queue_config('q18', 'retry_backoff_base', '10 seconds'),
       pgque.set_queue_config('q18', 'retry_backoff_cap', '1 hour'),
       pgque.set_queue_config('q18', 'max_retries', '5');

---------------------------------------------------------------------------
-- nack's retry_after and event_retry's time (an infinite one was taken,
-- and the retry never came due) and seconds; receive's and heartbeat's
-- lease; max_return.
---------------------------------------------------------------------------
SELECT count(pgque.send('q18', 't', 'n' || i)) AS sent FROM generate_series(1, 2) i;
SELECT pgque.force_tick('q18') IS NOT NULL AS ticked;
SELECT min(msg_id) AS m1, max(msg_id) AS m2, min(batch_id) AS b FROM pgque.receive('q18', 'c', 10) \gset
SELECT v, test.err(format('SELECT pgque.nack(%s, %s, %L)', :b, :m1, v)) AS result
  FROM unnest(ARRAY['-1 microsecond', '100 years 1 microsecond', '300000 years']) v;
SELECT current_batch AS batch FROM pgque.get_consumer_info('q18', 'c') \gset
SELECT test.err(format($$SELECT pgque.event_retry(%s, %s, 'infinity'::timestamptz)$$, :batch, :m1)) AS infinity,
       test.err(format($$SELECT pgque.event_retry(%s, %s, '-infinity'::timestamptz)$$, :batch, :m1)) AS minus_infinity;
SELECT test.err(format($$SELECT pgque.event_retry(%s, %s, NULL::timestamptz)$$, :batch, :m1)) AS null_time,
       test.err(format($$SELECT pgque.event_retry(%s, %s, NULL::int)$$, :batch, :m1)) AS null_seconds,
       test.err(format($$SELECT pgque.event_retry(%s, %s, -1)$$, :batch, :m1)) AS negative_seconds;
SELECT test.state(format($$SELECT pgque.event_retry(%s, %s, now() + interval '100 years 1 microsecond')$$, :batch, :m1)) AS just_outside,
       test.state(format($$SELECT pgque.event_retry(%s, %s, now() + interval '100 years')$$, :batch, :m1)) AS just_inside,
       test.state(format($$SELECT pgque.event_retry(%s, %s, 2147483647)$$, :batch, :m2)) AS max_seconds;
SELECT test.err(format('SELECT pgque.heartbeat(%s, %L)', :b, v)) AS heartbeat
  FROM unnest(ARRAY['0', '1 day 1 microsecond']) v;
SELECT test.state(format('SELECT pgque.heartbeat(%s, %L)', :b, v)) AS heartbeat
  FROM unnest(ARRAY['1 microsecond', '1 day']) v;
SELECT test.state(format('SELECT pgque.heartbeat(%s, NULL)', :b)) AS heartbeat_null_is_30s;
SELECT pgque.ack(:b) AS ack;
DELETE FROM pgque.retry_queue WHERE rq_sub = :csub;
SELECT test.err($$SELECT pgque.receive('q18', 'c', 10, 'w1', '0')$$) AS lease_0,
       test.err($$SELECT pgque.receive('q18', 'c', 10, 'w1', '1 day 1 microsecond')$$) AS lease_over_a_day;
SELECT test.err($$SELECT pgque.receive('q18', 'c', 0)$$) AS max_return_0,
       test.err($$SELECT pgque.receive('q18', 'c', NULL)$$) AS max_return_null,
       test.err($$SELECT pgque.peek('q18', 'c', -1)$$) AS peek_negative,
       test.err($$SELECT pgque.dlq_list('q18', 0)$$) AS max_rows_0;

---------------------------------------------------------------------------
-- Periods: dlq_purge's age, the maint_rotate_* periods, schedules' every
-- and start_at (start_at '-infinity' looped until statement_timeout).
---------------------------------------------------------------------------
SELECT v, test.err(format('SELECT pgque.dlq_purge(%L, %L)', 'q18', v)) AS dlq_purge
  FROM unnest(ARRAY[NULL, '-1 microsecond', '0', '100 years', '100 years 1 microsecond', '300000 years']) v;
SELECT f, v, test.err(format('SELECT pgque.%s(%L) >= 0', f, v)) AS result
  FROM unnest(ARRAY['maint_rotate_logs', 'maint_rotate_delayed', 'maint_rotate_dedup']) f,
       unnest(ARRAY[NULL, '0', '100 years', '100 years 1 microsecond', '300000 years']) v;
SELECT v, test.err(format('SELECT pgque.create_schedule(%L, %L, %L, %L, every => %L) IS NOT NULL',
                          's18_' || ord, 'q18', 't', 'x', v)) AS every
  FROM unnest(ARRAY[NULL, '0', '999 milliseconds', '1 second', '100 years', '100 years 1 second',
                    '300000 years']) WITH ORDINALITY u(v, ord);
SELECT test.err($$SELECT pgque.create_schedule('s18_inf', 'q18', 't', 'x', every => '1 day', start_at => 'infinity')$$) AS start_infinity,
       test.err($$SELECT pgque.create_schedule('s18_minf', 'q18', 't', 'x', every => '1 day', start_at => '-infinity')$$) AS start_minus_infinity;
SELECT test.state($$SELECT pgque.create_schedule('s18_a', 'q18', 't', 'x', every => '1 day', start_at => now() - interval '100 years 1 second')$$) AS long_ago,
       test.state($$SELECT pgque.create_schedule('s18_b', 'q18', 't', 'x', every => '1 day', start_at => now() - interval '100 years')$$) AS hundred_years_ago,
       test.state($$SELECT pgque.create_schedule('s18_c', 'q18', 't', 'x', every => '1 second', start_at => now() - interval '100 years')$$) AS seconds_since,
       test.state($$SELECT pgque.create_schedule('s18_d', 'q18', 't', 'x', every => '1 day', start_at => now() + interval '100 years')$$) AS hundred_years_ahead,
       test.state($$SELECT pgque.create_schedule('s18_e', 'q18', 't', 'x', every => '1 day', start_at => now() + interval '100 years 1 second')$$) AS too_far_ahead;
SELECT schedule_name, every, next_run > now() - interval '1 hour' AND next_run <= now() + interval '100 years' AS in_range
  FROM pgque.list_schedules('q18');
SELECT pgque.maint() >= 0 AS maint_ok;

---------------------------------------------------------------------------
-- Messages quote at most the first 100 characters of a caller's value,
-- then its length: a 400 KB value used to be echoed whole.
---------------------------------------------------------------------------
SELECT repeat('x', 400000) AS big \gset
CREATE TEMP TABLE big_calls (ord serial, what text, sql text);
INSERT INTO big_calls (what, sql) VALUES
    ('queue name', format('SELECT pgque.send(%L, %L, %L)', :'big', 't', 'x')),
    ('queue name with a bad character', format('SELECT pgque.send(%L, %L, %L)', '!' || left(:'big', 50), 't', 'x')),
    ('config parameter', format('SELECT pgque.set_queue_config(%L, %L, %L)', 'q18', :'big', '1')),
    ('config value', format('SELECT pgque.set_queue_config(%L, %L, %L)', 'q18', 'rotation_period', :'big')),
    ('cron expression', format('SELECT pgque.create_schedule(%L, %L, %L, %L, cron => %L)', 's18_big', 'q18', 't', 'x', :'big')),
    ('cron field', format('SELECT pgque.create_schedule(%L, %L, %L, %L, cron => %L)', 's18_big', 'q18', 't', 'x', '* * * * ' || :'big')),
    ('time zone', format('SELECT pgque.create_schedule(%L, %L, %L, %L, every => %L, time_zone => %L)', 's18_big', 'q18', 't', 'x', '1 hour', :'big')),
    ('privilege', format('SELECT pgque.grant_access(%L, %L, queue_name => %L)', 'pgque_reader', :'big', 'q18')),
    ('schedule name', format('SELECT pgque.drop_schedule(%L)', :'big'));
SELECT what, length(r) < 400 AS short, r AS message
  FROM big_calls, test.err(sql) r ORDER BY ord;
-- A role that may not touch the queue gets 42501, quoting the name short.
CREATE ROLE t18_tenant;
GRANT pgque_tenant TO t18_tenant;
GRANT USAGE ON SCHEMA test TO t18_tenant;
SET SESSION AUTHORIZATION t18_tenant;
SELECT length(r) < 400 AS short, r AS message
  FROM test.err(format('SELECT pgque.send(%L, %L, %L)', :'big', 't', 'x')) r;
RESET SESSION AUTHORIZATION;
DROP OWNED BY t18_tenant;
DROP ROLE t18_tenant;

SELECT pgque.drop_queue('q18', force => true);
RESET statement_timeout;
