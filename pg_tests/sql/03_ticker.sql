-- 03_ticker: ticker(queue) thresholds, ticker() over all queues, force_tick,
-- the isolation-level guard, the tick's NOTIFY, and the pending-straggler rule.
-- Queues of this file are named q03_*.  Tick ids are never printed, only
-- compared.
SELECT pgque.create_queue('q03_x');
SELECT pgque.subscribe('q03_x', 'c');
SELECT pgque.set_queue_config('q03_x', 'ticker_idle_period', '1 hour');

-- ticker returns NULL when nothing was sent and the queue was not idle long enough
SELECT last_tick_id AS t0 FROM pgque.get_queue_info('q03_x') \gset
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT last_tick_id = :t0 AS unchanged FROM pgque.get_queue_info('q03_x');

-- max_count: with ticker_max_lag '1 hour' and ticker_max_count 3, two new
-- events do not tick, the third does
SELECT pgque.set_queue_config('q03_x', 'ticker_max_lag', '1 hour');
SELECT pgque.set_queue_config('q03_x', 'ticker_max_count', '3');
SELECT pgque.send('q03_x', 't', 'one');
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT pgque.send('q03_x', 't', 'two');
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT ev_new, last_tick_id = :t0 AS unchanged FROM pgque.get_queue_info('q03_x');
SELECT pgque.send('q03_x', 't', 'three');
SELECT pgque.ticker('q03_x') AS t1 \gset
SELECT :t1 > :t0 AS ticked, last_tick_id = :t1 AS is_last, ev_new FROM pgque.get_queue_info('q03_x');
-- nothing new since: no tick
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT test.drain('q03_x', 'c');

-- max_lag: below max_count, an event ticks once ticker_max_lag has passed
SELECT pgque.send('q03_x', 't', 'four');
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT pgque.set_queue_config('q03_x', 'ticker_max_lag', '200 milliseconds');
SELECT pg_sleep(0.3);
SELECT pgque.ticker('q03_x') IS NOT NULL AS ticked;
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT test.drain('q03_x', 'c');

-- max_lag '0': any new event ticks at once
SELECT pgque.set_queue_config('q03_x', 'ticker_max_lag', '0');
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT pgque.send('q03_x', 't', 'five');
SELECT pgque.ticker('q03_x') IS NOT NULL AS ticked;
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT test.drain('q03_x', 'c');

-- idle period: with no new events the queue ticks once ticker_idle_period passed
SELECT pgque.set_queue_config('q03_x', 'ticker_idle_period', '200 milliseconds');
SELECT pg_sleep(0.3);
SELECT pgque.ticker('q03_x') IS NOT NULL AS idle_tick;
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT pgque.set_queue_config('q03_x', 'ticker_idle_period', '1 hour');
SELECT test.drain('q03_x', 'c');

-- ticker skips (NULL) a queue another session is ticking right now; the
-- event is delivered by that session's tick, once
SELECT pgque.send('q03_x', 't', 'six');
SELECT dblink_connect('t03', 'dbname=' || current_database());
SELECT dblink_exec('t03', 'BEGIN');
SELECT * FROM dblink('t03', $$SELECT pgque.force_tick('q03_x') IS NOT NULL$$) AS t(ticked boolean);
SELECT pgque.ticker('q03_x') IS NULL AS skipped;
SELECT dblink_exec('t03', 'COMMIT');
SELECT dblink_disconnect('t03');
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT test.drain('q03_x', 'c');

-- force_tick ticks whatever the thresholds, even with nothing new, with
-- increasing tick ids
SELECT pgque.force_tick('q03_x') AS f1 \gset
SELECT pgque.force_tick('q03_x') AS f2 \gset
SELECT pgque.force_tick('q03_x') AS f3 \gset
SELECT :f1 > :t1 AND :f2 > :f1 AND :f3 > :f2 AS increasing;
SELECT last_tick_id = :f3 AS is_last FROM pgque.get_queue_info('q03_x');
SELECT test.drain('q03_x', 'c');

-- ticker() ticks every queue that is due and returns how many did
SELECT pgque.create_queue('q03_a'), pgque.create_queue('q03_b'), pgque.create_queue('q03_c');
SELECT pgque.set_queue_config(q, 'ticker_idle_period', '1 hour') FROM unnest(ARRAY['q03_a', 'q03_b', 'q03_c']) q;
SELECT pgque.ticker() AS ticked;
SELECT last_tick_id AS a0 FROM pgque.get_queue_info('q03_a') \gset
SELECT last_tick_id AS b0 FROM pgque.get_queue_info('q03_b') \gset
SELECT last_tick_id AS c0 FROM pgque.get_queue_info('q03_c') \gset
SELECT pgque.send('q03_a', 't', 'a'), pgque.send('q03_b', 't', 'b');
SELECT pgque.ticker() AS ticked;
SELECT (SELECT last_tick_id > :a0 FROM pgque.get_queue_info('q03_a')) AS a_ticked,
       (SELECT last_tick_id > :b0 FROM pgque.get_queue_info('q03_b')) AS b_ticked,
       (SELECT last_tick_id = :c0 FROM pgque.get_queue_info('q03_c')) AS c_untouched;
SELECT pgque.ticker() AS ticked;
SELECT pgque.send('q03_c', 't', 'c');
SELECT pgque.ticker() AS ticked;
SELECT (SELECT last_tick_id > :c0 FROM pgque.get_queue_info('q03_c')) AS c_ticked;

-- ticker, force_tick, maint must run at READ COMMITTED: PQ009 otherwise,
-- and nothing is ticked
SELECT last_tick_id AS r0 FROM pgque.get_queue_info('q03_x') \gset
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.err($$SELECT pgque.ticker('q03_x')$$);
SELECT test.err($$SELECT pgque.ticker()$$);
SELECT test.err($$SELECT pgque.force_tick('q03_x')$$);
SELECT test.err($$SELECT pgque.maint()$$);
SELECT test.err($$SELECT pgque.maint_rotate_tables_step1('q03_x')$$);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT test.err($$SELECT pgque.force_tick('q03_x')$$);
SELECT test.err($$SELECT pgque.ticker('q03_x')$$);
ROLLBACK;
SELECT last_tick_id = :r0 AS unchanged FROM pgque.get_queue_info('q03_x');
-- READ COMMITTED inside an explicit transaction is fine
BEGIN ISOLATION LEVEL READ COMMITTED;
SELECT pgque.force_tick('q03_x') IS NOT NULL AS ticked;
COMMIT;

-- unknown queue: PQ001; NULL or impossible name: PQ006
SELECT test.err($$SELECT pgque.ticker('q03_nope')$$);
SELECT test.err($$SELECT pgque.force_tick('q03_nope')$$);
SELECT test.err($$SELECT pgque.ticker(NULL)$$);
SELECT test.err($$SELECT pgque.force_tick('q03 nope')$$);

-- a tick NOTIFYs channel "pgque_<queue>" with the tick id as payload, seen by
-- a listener in another session (the sender pid is never printed)
SELECT dblink_connect('l', 'dbname=' || current_database());
SELECT dblink_exec('l', 'LISTEN "pgque_q03_x"');
SELECT pgque.force_tick('q03_x') AS n1 \gset
SELECT * FROM dblink('l', 'SELECT 1') AS t(x int);
SELECT notify_name, extra IS NOT NULL AS has_extra, extra = :'n1' AS extra_is_tick_id
  FROM dblink_get_notify('l');
-- ... a ticker() tick notifies too
SELECT pgque.send('q03_x', 't', 'seven');
SELECT pgque.ticker('q03_x') AS n2 \gset
SELECT * FROM dblink('l', 'SELECT 1') AS t(x int);
SELECT notify_name, extra = :'n2' AS extra_is_tick_id FROM dblink_get_notify('l');
-- ... no tick, no notification; other queues' ticks do not notify this
-- channel; a rolled-back tick notifies nobody
SELECT pgque.ticker('q03_x') IS NULL AS no_tick;
SELECT pgque.force_tick('q03_a') IS NOT NULL AS other_queue_ticked;
BEGIN;
SELECT pgque.force_tick('q03_x') IS NOT NULL AS ticked;
ROLLBACK;
SELECT * FROM dblink('l', 'SELECT 1') AS t(x int);
SELECT count(*) AS notifications FROM dblink_get_notify('l');
SELECT dblink_exec('l', 'UNLISTEN *');
SELECT dblink_disconnect('l');
SELECT test.drain('q03_x', 'c');

-- pending-straggler rule: a transaction that was in progress at the last
-- tick, and wrote an event counted by it, makes ticker() tick as soon as it
-- commits, although no threshold is reached (max_lag, max_count and
-- idle_period are all out of reach here); its event is received exactly once
SELECT pgque.create_queue('q03_s');
SELECT pgque.subscribe('q03_s', 'c');
SELECT pgque.set_queue_config('q03_s', 'ticker_max_lag', '1 hour');
SELECT pgque.set_queue_config('q03_s', 'ticker_max_count', '1000000');
SELECT pgque.set_queue_config('q03_s', 'ticker_idle_period', '1 hour');
SELECT dblink_connect('p', 'dbname=' || current_database());
-- (a) the sender is not the newest transaction: another one (the
-- set_queue_config call) started after it and committed before the tick
SELECT dblink_exec('p', 'BEGIN');
SELECT * FROM dblink('p', $$SELECT pgque.send('q03_s', 's', 'straggler a')$$) AS t(id bigint);
SELECT pgque.set_queue_config('q03_s', 'ticker_max_count', '1000000');
SELECT pgque.force_tick('q03_s') IS NOT NULL AS ticked;
-- the event is not visible to that tick
SELECT test.ids('q03_s', 'c');
-- while the sender is still running there is nothing to tick for
SELECT pgque.ticker('q03_s') IS NULL AS no_tick;
SELECT dblink_exec('p', 'COMMIT');
SELECT last_tick_id AS s0 FROM pgque.get_queue_info('q03_s') \gset
SELECT pgque.ticker('q03_s') IS NOT NULL AS straggler_tick;
SELECT last_tick_id > :s0 AS ticked FROM pgque.get_queue_info('q03_s');
SELECT pgque.ticker('q03_s') IS NULL AS no_tick;
SELECT test.drain('q03_s', 'c');
SELECT pgque.force_tick('q03_s') IS NOT NULL AS ticked;
SELECT test.drain('q03_s', 'c');
-- (b) the sender is the newest transaction when the tick is taken (its xid
-- is not below the tick snapshot's xmax): the rule must hold all the same
SELECT dblink_exec('p', 'BEGIN');
SELECT * FROM dblink('p', $$SELECT pgque.send('q03_s', 's', 'straggler b')$$) AS t(id bigint);
SELECT pgque.force_tick('q03_s') IS NOT NULL AS ticked;
SELECT test.ids('q03_s', 'c');
SELECT pgque.ticker('q03_s') IS NULL AS no_tick;
SELECT dblink_exec('p', 'COMMIT');
SELECT last_tick_id AS s1 FROM pgque.get_queue_info('q03_s') \gset
SELECT pgque.ticker('q03_s') IS NOT NULL AS straggler_tick;
SELECT last_tick_id > :s1 AS ticked FROM pgque.get_queue_info('q03_s');
SELECT pgque.ticker('q03_s') IS NULL AS no_tick;
SELECT test.drain('q03_s', 'c');
SELECT pgque.force_tick('q03_s') IS NOT NULL AS ticked;
SELECT test.drain('q03_s', 'c');
SELECT dblink_disconnect('p');

-- clean up
SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['q03_x', 'q03_a', 'q03_b', 'q03_c', 'q03_s']) q;
SELECT count(*) AS left_over FROM pgque.queue WHERE queue_name LIKE 'q03%';
