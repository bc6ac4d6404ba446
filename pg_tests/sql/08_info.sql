-- 08_info: the introspection functions get_queue_info, get_consumer_info,
-- get_batch_info, get_table_info, and maint_rotate_logs.  Times, tick ids,
-- batch ids and sizes are only compared, never printed.

CREATE FUNCTION pg_temp.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN r ELSE left(r, 7) || regexp_replace(substr(r, 8), '[0-9]+', 'N', 'g') END
      FROM test.err(sql) r
$$;

SELECT pgque.create_queue('q08_a');
SELECT pgque.create_queue('q08_b');
SELECT pgque.subscribe('q08_a', c) FROM unnest(ARRAY['c1', 'c2']) c;
SELECT pgque.subscribe('q08_b', 'only');

---------------------------------------------------------------------------
-- get_queue_info: settings (defaults), consumers, ev_new, last tick, rate,
-- paused, size and dead tuples of the event tables.
---------------------------------------------------------------------------
-- all queues (other test files' queues are filtered out)
SELECT queue_name, queue_ntables, queue_cur_table, queue_rotation_period, queue_ticker_max_count,
       queue_ticker_max_lag, queue_ticker_idle_period, queue_max_retries, queue_retry_backoff_base,
       queue_retry_backoff_cap, consumers, ev_new, last_tick_id IS NOT NULL AS has_last_tick,
       retry_pending, dead_letters, ticker_lag >= '0' AS lag_ok, ev_per_sec,
       queue_switch_time <= now() AS switch_time_ok, paused, paused_at, event_bytes > 0 AS has_size,
       event_dead_tuples
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'q08%' ORDER BY queue_name;
SELECT event_bytes AS a_bytes FROM pgque.get_queue_info('q08_a') \gset
-- by name: one row; the same as in the list
SELECT count(*) AS rows FROM pgque.get_queue_info('q08_a');
SELECT (SELECT i FROM pgque.get_queue_info('q08_a') i)::text
       = (SELECT i FROM pgque.get_queue_info() i WHERE queue_name = 'q08_a')::text AS same_as_listed;
-- ev_new counts sends since the newest tick (rolled back ones too: it is an
-- estimate from the event sequence); a tick resets it; last_tick_id is the
-- newest tick
SELECT pgque.send('q08_a', 't', 'a' || i) FROM generate_series(1, 3) i;
BEGIN;
SELECT pgque.send('q08_a', 't', 'rolled back');
ROLLBACK;
SELECT ev_new FROM pgque.get_queue_info('q08_a');
SELECT ev_new FROM pgque.get_queue_info('q08_b');
-- ev_per_sec: the 4 events over the queue's life (younger than a minute,
-- so measured from its first tick); none on q08_b
SELECT round((ev_per_sec * extract(epoch FROM now() - queue_switch_time))::numeric, 6) AS a_events_in_window
  FROM pgque.get_queue_info('q08_a');
SELECT ev_per_sec AS b_rate FROM pgque.get_queue_info('q08_b');
-- event_bytes grows with the events; the rolled-back send is the one dead
-- tuple (the statistics collector learns of it once this session reports)
SELECT pg_stat_force_next_flush();
SELECT queue_name, event_bytes > :a_bytes AS grew, event_dead_tuples
  FROM pgque.get_queue_info() WHERE queue_name LIKE 'q08%' ORDER BY queue_name;
SELECT pgque.force_tick('q08_a') AS tick_a \gset
SELECT ev_new, last_tick_id = :tick_a AS last_tick_is_newest FROM pgque.get_queue_info('q08_a');
SELECT consumers FROM pgque.get_queue_info('q08_a');
SELECT pgque.unsubscribe('q08_a', 'c2');
SELECT consumers FROM pgque.get_queue_info('q08_a');
SELECT pgque.subscribe('q08_a', 'c2');
-- set_queue_config shows up
SELECT pgque.set_queue_config('q08_b', 'ticker_max_count', '7');
SELECT pgque.set_queue_config('q08_b', 'max_retries', '1');
SELECT queue_ticker_max_count, queue_max_retries FROM pgque.get_queue_info('q08_b');
-- errors
SELECT test.err($$SELECT * FROM pgque.get_queue_info('q08_nope')$$);
SELECT test.err($$SELECT * FROM pgque.get_queue_info('bad name!')$$);

---------------------------------------------------------------------------
-- get_consumer_info: all, by queue, by queue and consumer; pending_events
-- and current_batch before and after consuming.
---------------------------------------------------------------------------
SELECT pgque.send('q08_a', 't', 'a4');
SELECT pgque.force_tick('q08_a') AS tick_a \gset
-- c2 subscribed again after the first events: it counts only the last one
-- (lag is 0 for a consumer with nothing pending, batch_age NULL without a batch)
SELECT queue_name, consumer_name, pending_events, current_batch IS NULL AS no_batch,
       next_tick IS NULL AS no_next_tick, last_tick IS NOT NULL AS has_last_tick,
       retry_pending, dead_letters, blocking_rotation, lag > '0' AS lagging, last_seen >= '0' AS seen_ok,
       batch_age
  FROM pgque.get_consumer_info() WHERE queue_name LIKE 'q08%' ORDER BY queue_name, consumer_name;
SELECT consumer_name FROM pgque.get_consumer_info('q08_a') ORDER BY 1;
SELECT consumer_name, pending_events FROM pgque.get_consumer_info('q08_a', 'c1');
-- opening a batch: current_batch and next_tick are set; pending stays until finished
SELECT min(batch_id) AS p, count(*) AS n FROM pgque.receive('q08_a', 'c1', 2) \gset
SELECT test.batch('q08_a', 'c1') AS b \gset
SELECT :n AS received;
SELECT current_batch = :b AS current_is_open_batch, next_tick = :tick_a AS next_is_newest_tick,
       last_tick < next_tick AS ordered, pending_events,
       batch_age >= '0' AS batch_age_set,
       lag >= batch_age AS lag_covers_batch
  FROM pgque.get_consumer_info('q08_a', 'c1');
-- batch_age counts from the batch's end tick, before the opening, not from
-- the consumer's last call
SELECT now() - (SELECT min(sub_active) FROM pgque.sub_state WHERE sub_batch = :b) AS opened_ago \gset
-- a partial ack keeps the batch open
SELECT pgque.ack(:p);
SELECT current_batch = :b AS still_open, batch_age > :'opened_ago' AS batch_age_from_before_opening,
       batch_age = now() - (SELECT min(tick_time) FROM pgque.tick WHERE tick_id = :tick_a) AS batch_age_from_end_tick,
       batch_age > last_seen AS older_than_last_call
  FROM pgque.get_consumer_info('q08_a', 'c1');
SELECT cardinality(test.drain('q08_a', 'c1')) AS rest;
SELECT current_batch IS NULL AS no_batch, next_tick IS NULL AS no_next_tick, last_tick = :tick_a AS at_newest_tick,
       pending_events, lag, batch_age
  FROM pgque.get_consumer_info('q08_a', 'c1');
SELECT consumer_name, pending_events FROM pgque.get_consumer_info('q08_a') ORDER BY 1;
-- errors
SELECT test.err($$SELECT * FROM pgque.get_consumer_info('q08_a', 'nobody')$$);
SELECT test.err($$SELECT * FROM pgque.get_consumer_info('q08_b', 'c1')$$);
SELECT test.err($$SELECT * FROM pgque.get_consumer_info('q08_nope')$$);
SELECT test.err($$SELECT * FROM pgque.get_consumer_info('q08_nope', 'c1')$$);

---------------------------------------------------------------------------
-- get_batch_info: where an open batch starts and ends.
---------------------------------------------------------------------------
SELECT pgque.send('q08_a', 't', 'a5');
SELECT pgque.force_tick('q08_a') AS tick_a \gset
SELECT last_tick AS c2_last FROM pgque.get_consumer_info('q08_a', 'c2') \gset
SELECT pgque.next_batch('q08_a', 'c2') AS b \gset
SELECT queue_name, consumer_name,
       prev_tick_id = :c2_last AS prev_is_consumer_position, tick_id = :tick_a AS tick_is_newest,
       prev_tick_id < tick_id AS ordered, batch_start <= batch_end AS times_ordered,
       seq_end - seq_start AS events_in_range, lag >= '0' AS lag_ok
  FROM pgque.get_batch_info(:b);
SELECT pgque.finish_batch(:b);
SELECT pg_temp.e(format('SELECT * FROM pgque.get_batch_info(%s)', :b)) AS finished;
SELECT test.err('SELECT * FROM pgque.get_batch_info(-1)');
SELECT test.err('SELECT * FROM pgque.get_batch_info(NULL)');

---------------------------------------------------------------------------
-- maint_rotate_logs: ticks (and consumer states) live in three partitions recycled by
-- TRUNCATE; every queue's newest tick survives any number of switches, older
-- ticks go, and consumers keep working, even one whose position tick is gone.
---------------------------------------------------------------------------
SELECT queue_id AS qa FROM pgque.queue WHERE queue_name = 'q08_a' \gset
SELECT queue_id AS qb FROM pgque.queue WHERE queue_name = 'q08_b' \gset
SELECT count(*) > 1 AS several_ticks FROM pgque.tick WHERE tick_queue = :qa;
SELECT pgque.maint_rotate_logs('1 hour') + pgque.maint_rotate_logs('1 hour') <= 1 AS at_most_one_switch_per_period;
SELECT pgque.maint_rotate_logs('1 microsecond') AS switched;
SELECT pgque.maint_rotate_logs('1 microsecond') AS switched;
SELECT pgque.maint_rotate_logs('1 microsecond') AS switched;
SELECT count(DISTINCT tick_id) AS distinct_ticks, max(tick_id) = :tick_a AS newest_kept
  FROM pgque.tick WHERE tick_queue = :qa;
SELECT count(DISTINCT tick_id) AS distinct_ticks FROM pgque.tick WHERE tick_queue = :qb;
SELECT last_tick_id = :tick_a AS info_last_tick FROM pgque.get_queue_info('q08_a');
-- c1's position is an older tick, now gone: it still gets a5 and a6
-- (c2 finished the a5 batch above without reading it: it gets a6)
SELECT pgque.send('q08_a', 't', 'a6');
SELECT pgque.force_tick('q08_a') AS tick_a6 \gset
SELECT test.drain('q08_a', 'c1') AS c1_gets;
SELECT test.drain('q08_a', 'c2') AS c2_gets;
-- a partition locked by someone else is skipped, not waited for
SELECT dblink_connect('t08', 'dbname=' || current_database());
SELECT dblink_exec('t08', 'BEGIN');
SELECT dblink_exec('t08', format('LOCK TABLE pgque.tick_%s IN ACCESS SHARE MODE',
                                 (pg_sequence_last_value('pgque.log_gen') + 1) % 3));
SELECT pgque.maint_rotate_logs('1 microsecond') AS switched_while_locked;
SELECT dblink_exec('t08', 'ROLLBACK');
SELECT dblink_disconnect('t08');
SELECT pgque.maint_rotate_logs('1 microsecond') AS switched_after_unlock;
SELECT count(DISTINCT tick_id) AS distinct_ticks, max(tick_id) = :tick_a6 AS newest_kept
  FROM pgque.tick WHERE tick_queue = :qa;
SELECT test.err($$SELECT pgque.maint_rotate_logs('0')$$);
SELECT test.err($$SELECT pgque.maint_rotate_logs(NULL)$$);

---------------------------------------------------------------------------
-- get_table_info: pgque's tables, database wide.  Once every log partition
-- is recycled, the insert-only logs hold no dead tuples, whatever earlier
-- test files deleted or rolled back, and consumer work adds none.  (The
-- sessions of earlier files report their statistics as they exit: wait
-- until they are gone before recycling.)
---------------------------------------------------------------------------
DO $$
BEGIN
    FOR i IN 1 .. 1000 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN NOT EXISTS (SELECT 1 FROM pg_stat_activity
                               WHERE datname = current_database() AND pid <> pg_backend_pid());
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
SELECT count(*) AS other_sessions FROM pg_stat_activity
 WHERE datname = current_database() AND pid <> pg_backend_pid();
SELECT pgque.maint_rotate_logs('1 microsecond') + pgque.maint_rotate_logs('1 microsecond')
       + pgque.maint_rotate_logs('1 microsecond') AS switched;
SELECT pgque.send('q08_a', 't', 'a' || i) FROM generate_series(7, 8) i;
SELECT pgque.force_tick('q08_a') IS NOT NULL AS ticked;
SELECT cardinality(test.drain('q08_a', 'c1', 1)) AS c1_got, cardinality(test.drain('q08_a', 'c2')) AS c2_got;
SELECT pg_stat_force_next_flush();
SELECT table_name, CASE WHEN table_name <> 'pgque.event' THEN partitions END AS partitions,
       total_bytes > 0 AS has_size, live_tuples >= 0 AS live_ok,
       CASE WHEN table_name IN ('pgque.tick', 'pgque.sub_state') THEN dead_tuples::text ELSE 'not checked' END
         AS dead_tuples
  FROM pgque.get_table_info() ORDER BY table_name;
-- the event tables of every queue, free ones included, are in pgque.event
SELECT partitions = 3 * (SELECT count(*) FROM pgque.event_slot) AS all_event_tables,
       total_bytes >= (SELECT sum(event_bytes) FROM pgque.get_queue_info()) AS covers_queues
  FROM pgque.get_table_info() WHERE table_name = 'pgque.event';

-- blocking_rotation blames a consumer only when the queue ticked past the
-- last switch and the consumer has not caught up; while a long producer
-- transaction keeps every tick before the switch, nobody is blamed
SELECT pgque.create_queue('q08_r');
SELECT pgque.set_queue_config('q08_r', 'rotation_period', '1 millisecond');
SELECT pgque.subscribe('q08_r', 'c');
SELECT dblink_connect('r08', 'dbname=' || current_database());
SELECT dblink_exec('r08', 'BEGIN');
SELECT * FROM dblink('r08', $$SELECT pgque.send('q08_r', 't', 'long')$$) AS t(id bigint);
SELECT pg_sleep(0.01);
SELECT pgque.maint_rotate_tables_step1('q08_r') AS switched;
SELECT pgque.maint_rotate_tables_step2() AS step2;
SELECT pgque.force_tick('q08_r') IS NOT NULL AS ticked;
SELECT test.drain('q08_r', 'c') AS nothing_yet;
SELECT blocking_rotation AS blamed_while_producer_open FROM pgque.get_consumer_info('q08_r', 'c');
SELECT dblink_exec('r08', 'COMMIT');
SELECT dblink_disconnect('r08');
SELECT pgque.force_tick('q08_r') IS NOT NULL AS ticked;
SELECT blocking_rotation AS blamed_when_behind FROM pgque.get_consumer_info('q08_r', 'c');
SELECT test.drain('q08_r', 'c') AS got;
SELECT blocking_rotation AS blamed_after_catching_up FROM pgque.get_consumer_info('q08_r', 'c');

SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['q08_a', 'q08_b', 'q08_r']) q;
