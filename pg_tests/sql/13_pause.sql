-- 13_pause: pause_queue / resume_queue.  A paused queue takes sends, ticks
-- and maintenance, but hands out nothing: receive() returns no rows and
-- next_batch() / next_batch_info() return NULL, also for a batch that was
-- open when the queue was paused.  What was handed out before the pause can
-- still be acknowledged or nacked by batch id.  resume_queue() NOTIFYs the
-- queue's channel with the newest tick id, and delivery continues with
-- nothing lost.  Tick and batch ids are only compared, never printed.

SELECT pgque.create_queue('q13');
SELECT pgque.subscribe('q13', c) FROM unnest(ARRAY['a', 'b']) c;

---------------------------------------------------------------------------
-- Return values, the paused columns of get_queue_info, errors.
---------------------------------------------------------------------------
SELECT paused, paused_at IS NULL AS no_paused_at FROM pgque.get_queue_info('q13');
SELECT pgque.resume_queue('q13') AS resume_running;
SELECT pgque.pause_queue('q13') AS pause;
SELECT pgque.pause_queue('q13') AS pause_again;
SELECT paused, paused_at <= now() AS paused_at_set FROM pgque.get_queue_info('q13');
SELECT pgque.resume_queue('q13') AS resume;
SELECT pgque.resume_queue('q13') AS resume_again;
SELECT paused, paused_at IS NULL AS no_paused_at FROM pgque.get_queue_info('q13');
-- pausing in a transaction that rolls back changes nothing
BEGIN;
SELECT pgque.pause_queue('q13') AS pause;
ROLLBACK;
SELECT paused FROM pgque.get_queue_info('q13');
SELECT test.err($$SELECT pgque.pause_queue('q13_nope')$$);
SELECT test.err($$SELECT pgque.resume_queue('q13_nope')$$);
SELECT test.err($$SELECT pgque.pause_queue(NULL)$$);
SELECT test.err($$SELECT pgque.resume_queue(NULL)$$);
SELECT test.err($$SELECT pgque.pause_queue('bad name!')$$);
SELECT test.err($$SELECT pgque.resume_queue('')$$);

---------------------------------------------------------------------------
-- While paused: sends and ticks go on, consumers get nothing and no batch
-- is opened.  After resume everything comes, in order, nothing lost.
---------------------------------------------------------------------------
SELECT pgque.send('q13', 't', 'before');
SELECT pgque.pause_queue('q13');
SELECT pgque.send('q13', 't', 'p' || i) FROM generate_series(1, 3) i;
SELECT pgque.send_batch('q13', 't', ARRAY['p4', 'p5']);
SELECT pgque.force_tick('q13') IS NOT NULL AS force_ticked;
SELECT pgque.send('q13', 't', 'p6');
SELECT pgque.ticker('q13') IS NOT NULL AS ticker_ticked;
SELECT ev_new, paused FROM pgque.get_queue_info('q13');
SELECT test.ids('q13', 'a') AS a_paused;
SELECT * FROM pgque.next_batch_info('q13', 'b');
SELECT pgque.next_batch('q13', 'b') IS NULL AS b_no_batch;
SELECT consumer_name, current_batch IS NULL AS no_batch, pending_events
  FROM pgque.get_consumer_info('q13') ORDER BY 1;
SELECT pgque.resume_queue('q13');
SELECT test.drain('q13', 'a') AS a_after_resume;
SELECT pgque.next_batch('q13', 'b') AS b_batch \gset
SELECT array_agg(ev_id ORDER BY ev_id) AS b_after_resume FROM pgque.get_batch_events(:b_batch);
SELECT pgque.finish_batch(:b_batch);
SELECT consumer_name, current_batch IS NULL AS no_batch, pending_events
  FROM pgque.get_consumer_info('q13') ORDER BY 1;

---------------------------------------------------------------------------
-- A batch open when the queue is paused stays open: no further piece of it
-- is handed out, but what was handed out can be nacked and acked.  After
-- resume the next receive continues after the acknowledged position.
---------------------------------------------------------------------------
SELECT pgque.send('q13', 't', 'o' || i) FROM generate_series(1, 6) i;
SELECT pgque.force_tick('q13') IS NOT NULL AS ticked;
SELECT array_agg(msg_id ORDER BY msg_id) AS a_first_piece, min(batch_id) AS a_piece
  FROM pgque.receive('q13', 'a', 2) \gset
SELECT test.batch('q13', 'a') AS a_batch \gset
SELECT :'a_first_piece' AS a_first_piece;
SELECT pgque.next_batch('q13', 'b') AS b_batch \gset
SELECT pgque.pause_queue('q13');
-- nothing more of a's open batch, and b's open batch is not returned again
SELECT test.ids('q13', 'a') AS a_paused;
SELECT pgque.next_batch('q13', 'b') IS NULL AS b_not_returned;
SELECT * FROM pgque.next_batch_info('q13', 'b');
-- both batches are still open
SELECT test.batch('q13', 'a') = :a_batch AS a_still_open, test.batch('q13', 'b') = :b_batch AS b_still_open;
SELECT consumer_name, batch_age >= '0' AS batch_age_set FROM pgque.get_consumer_info('q13') ORDER BY 1;
-- what was handed out can be nacked and acked; the batch stays open with
-- the rest for after the pause
SELECT pgque.nack(:a_piece, (:'a_first_piece'::bigint[])[2], '0', 'failed while paused') AS nacked;
SELECT pgque.ack(:a_piece) AS acked;
SELECT pgque.ack(:a_piece) AS acked_again;
SELECT test.batch('q13', 'a') = :a_batch AS a_still_open;
SELECT test.ids('q13', 'a') AS a_paused;
-- the batch-id calls of the PgQ API work too
SELECT array_agg(ev_id ORDER BY ev_id) AS b_events FROM pgque.get_batch_events(:b_batch);
SELECT prev_tick_id < tick_id AS b_batch_info FROM pgque.get_batch_info(:b_batch);
SELECT pgque.event_retry(:b_batch, (SELECT min(ev_id) FROM pgque.get_batch_events(:b_batch)), 0) AS b_retry;
SELECT pgque.finish_batch(:b_batch) AS b_finished;
SELECT test.batch('q13', 'b') IS NULL AS b_closed;
SELECT pgque.next_batch('q13', 'b') IS NULL AS b_no_new_batch;
-- retries are moved back and ticked while paused, but not delivered
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.force_tick('q13') IS NOT NULL AS ticked;
SELECT retry_pending FROM pgque.get_consumer_info('q13') ORDER BY consumer_name;
SELECT test.ids('q13', 'a') AS a_paused, pgque.next_batch('q13', 'b') IS NULL AS b_paused;
SELECT pgque.resume_queue('q13');
-- a: the rest of its open batch first (after the acked piece), then the
-- retried message in a later batch; b: its retried event
SELECT array_agg(msg_id ORDER BY msg_id) AS a_rest, test.batch('q13', 'a') = :a_batch AS same_batch
  FROM pgque.receive('q13', 'a', 100);
SELECT pgque.ack(test.piece('q13', 'a'));
SELECT msg_id, retry_count FROM pgque.receive('q13', 'a', 100);
SELECT pgque.ack(test.piece('q13', 'a'));
SELECT cardinality(test.drain('q13', 'a')) AS a_left;
SELECT pgque.next_batch('q13', 'b') AS b_batch \gset
SELECT ev_id, ev_retry FROM pgque.get_batch_events(:b_batch);
SELECT pgque.finish_batch(:b_batch);

-- a piece that was the rest of the batch, acked while paused, finishes it
SELECT pgque.send('q13', 't', 'f' || i) FROM generate_series(1, 2) i;
SELECT pgque.force_tick('q13') IS NOT NULL AS ticked;
SELECT min(batch_id) AS a_piece FROM pgque.receive('q13', 'a', 100) \gset
SELECT pgque.pause_queue('q13');
SELECT pgque.ack(:a_piece) AS acked;
SELECT test.batch('q13', 'a') IS NULL AS a_finished;
SELECT pending_events FROM pgque.get_consumer_info('q13', 'a');
SELECT pgque.resume_queue('q13');
SELECT cardinality(test.drain('q13', 'a')) AS a_left, cardinality(test.drain('q13', 'b')) AS b_left;

---------------------------------------------------------------------------
-- resume_queue NOTIFYs the queue's channel with the newest tick id (a
-- listener in another session); pause_queue does not.
---------------------------------------------------------------------------
SELECT pgque.force_tick('q13') AS tick \gset
SELECT dblink_connect('l13', 'dbname=' || current_database());
SELECT dblink_exec('l13', 'LISTEN pgque_q13');
SELECT pgque.pause_queue('q13');
SELECT * FROM dblink('l13', 'SELECT 1') AS t(x int);  -- notifications come with a round trip
SELECT count(*) AS after_pause FROM dblink_get_notify('l13');
SELECT pgque.resume_queue('q13');
SELECT * FROM dblink('l13', 'SELECT 1') AS t(x int);
SELECT notify_name, extra = :'tick' AS payload_is_newest_tick FROM dblink_get_notify('l13');
-- resuming a running queue sends nothing
SELECT pgque.resume_queue('q13');
SELECT * FROM dblink('l13', 'SELECT 1') AS t(x int);
SELECT count(*) AS after_noop_resume FROM dblink_get_notify('l13');
SELECT dblink_disconnect('l13');

---------------------------------------------------------------------------
-- pause_queue waits for a consumer call in progress (its transaction holds
-- the consumer's row lock); once pause_queue has committed, nothing more is
-- handed out.
---------------------------------------------------------------------------
SELECT pgque.send('q13', 't', 'w' || i) FROM generate_series(1, 4) i;
SELECT pgque.force_tick('q13') IS NOT NULL AS ticked;
SELECT dblink_connect('r13', 'dbname=' || current_database());
SELECT dblink_connect('p13', 'dbname=' || current_database());
SELECT dblink_exec('r13', 'BEGIN');
SELECT * FROM dblink('r13', $$SELECT msg_id FROM pgque.receive('q13', 'a', 2)$$) AS t(id bigint);
SELECT * FROM dblink('p13', 'SELECT pg_backend_pid()') AS t(pid int) \gset p13_
SELECT dblink_send_query('p13', $$SELECT pgque.pause_queue('q13')$$);
-- wait (bounded) until the pause waits for the receiving transaction's lock
SET test13.pid = :p13_pid;
DO $$
BEGIN
    FOR i IN 1 .. 1000 LOOP
        PERFORM pg_stat_clear_snapshot();
        EXIT WHEN EXISTS (SELECT 1 FROM pg_stat_activity
                           WHERE pid = current_setting('test13.pid')::int AND wait_event_type = 'Lock');
        PERFORM pg_sleep(0.01);
    END LOOP;
END
$$;
RESET test13.pid;
SELECT wait_event_type FROM pg_stat_activity WHERE pid = :p13_pid;
SELECT dblink_is_busy('p13') AS pause_waiting;
SELECT dblink_exec('r13', 'COMMIT');
SELECT * FROM dblink_get_result('p13') AS t(paused int);
SELECT * FROM dblink_get_result('p13') AS t(paused int);
SELECT * FROM dblink('r13', $$SELECT msg_id FROM pgque.receive('q13', 'a', 2)$$) AS t(id bigint);
SELECT dblink_disconnect('r13');
SELECT dblink_disconnect('p13');
SELECT pgque.resume_queue('q13');
SELECT test.drain('q13', 'a') AS a_after_resume;
SELECT cardinality(test.drain('q13', 'b')) AS b_got;

---------------------------------------------------------------------------
-- Rotation and maintenance go on while paused, as far as it is safe: the
-- first switch happens, the next one waits for the consumer, which cannot
-- move while paused; after resume it gets every event, from both tables.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q13_r');
SELECT pgque.set_queue_config('q13_r', 'rotation_period', '1 millisecond');
SELECT pgque.subscribe('q13_r', 'c');
SELECT pgque.pause_queue('q13_r');
SELECT pgque.send('q13_r', 't', 'r' || i) FROM generate_series(1, 2) i;
SELECT pgque.force_tick('q13_r') IS NOT NULL AS ticked;
SELECT pg_sleep(0.01);
SELECT pgque.maint() > 0 AS maint_did_something;
SELECT pgque.maint_rotate_tables_step2() >= 1 AS step2;
SELECT queue_switch_post IS NOT NULL AS step2_done FROM pgque.queue WHERE queue_name = 'q13_r';
SELECT queue_cur_table AS switched_to FROM pgque.get_queue_info('q13_r');
SELECT pgque.send('q13_r', 't', 'r' || i) FROM generate_series(3, 4) i;
SELECT pgque.force_tick('q13_r') IS NOT NULL AS ticked;
SELECT pg_sleep(0.01);
SELECT pgque.maint_rotate_tables_step1('q13_r') AS second_switch;
SELECT queue_cur_table, paused FROM pgque.get_queue_info('q13_r');
SELECT blocking_rotation FROM pgque.get_consumer_info('q13_r', 'c');
SELECT test.ids('q13_r', 'c') AS paused;
SELECT pgque.resume_queue('q13_r');
SELECT test.drain('q13_r', 'c') AS all_events;
SELECT blocking_rotation FROM pgque.get_consumer_info('q13_r', 'c');

---------------------------------------------------------------------------
-- Roles: only pgque_admin pauses and resumes.
---------------------------------------------------------------------------
CREATE ROLE t13_reader;
CREATE ROLE t13_writer;
CREATE ROLE t13_admin;
GRANT pgque_reader TO t13_reader;
GRANT pgque_writer TO t13_writer;
GRANT pgque_admin TO t13_admin;
GRANT USAGE ON SCHEMA test TO t13_reader, t13_writer, t13_admin;
SET ROLE t13_reader;
SELECT test.err($$SELECT pgque.pause_queue('q13')$$);
SELECT test.err($$SELECT pgque.resume_queue('q13')$$);
SELECT paused FROM pgque.get_queue_info('q13');
SET ROLE t13_writer;
SELECT test.err($$SELECT pgque.pause_queue('q13')$$);
SELECT test.err($$SELECT pgque.resume_queue('q13')$$);
SET ROLE t13_admin;
SELECT pgque.pause_queue('q13');
SELECT pgque.resume_queue('q13');
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM t13_reader, t13_writer, t13_admin;
DROP ROLE t13_reader, t13_writer, t13_admin;

SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['q13', 'q13_r']) q;
