-- 23_jobs: message_status (21_jobs.sql): one message followed through every
-- state, for each consumer of its queue, without moving any position.

SELECT pgque.create_queue('q23');
SELECT pgque.subscribe('q23', 'a');
SELECT pgque.subscribe('q23', 'b');
SELECT pgque.set_queue_config('q23', 'max_retries', '1');
-- test.st23(id): consumer:state[/worker][/retry_count] for each consumer.
CREATE FUNCTION test.st23(id bigint) RETURNS text LANGUAGE sql AS $$
    SELECT string_agg(coalesce(consumer_name, '-') || ':' || state
                      || coalesce('/' || worker_name, '') || coalesce('/' || retry_count, ''), ' '
                      ORDER BY consumer_name)
      FROM pgque.message_status('q23', id)
$$;

-- Sent, committed, not ticked yet: nobody can have it.
SELECT pgque.send('q23', 'job', 'one') AS one \gset
SELECT test.st23(:one) AS sent;
SELECT type, payload, created_at IS NOT NULL AS has_time, position_at IS NOT NULL AS has_position
  FROM pgque.message_status('q23', :one) WHERE consumer_name = 'a';
SELECT pgque.force_tick('q23') IS NOT NULL AS ticked;
SELECT test.st23(:one) AS ticked;
-- Looking moved nothing: a still gets it.
SELECT test.ids('q23', 'a') = ARRAY[:one]::bigint[] AS a_receives_it;
SELECT test.st23(:one) AS a_has_it;
SELECT pgque.ack(test.piece('q23', 'a')) AS a_acked;
SELECT test.st23(:one) AS a_done;

-- A nack puts it in a's retry store; b still has it pending.
SELECT pgque.send('q23', 'job', 'two') AS two \gset
SELECT pgque.force_tick('q23') IS NOT NULL AS ticked;
SELECT test.ids('q23', 'a') = ARRAY[:two]::bigint[] AS a_receives_two;
SELECT pgque.nack(test.piece('q23', 'a'), :two, interval '0', 'boom') AS nacked;
SELECT pgque.ack(test.piece('q23', 'a')) AS a_acked;
SELECT test.st23(:two) AS retrying;
SELECT due_at <= now() AS due, reason, retry_count FROM pgque.message_status('q23', :two) WHERE consumer_name = 'a';
-- Moved back into the event table as a's copy: not ticked, then pending,
-- then handed out as retry 1; a second failure dead-letters it.
SELECT pgque.maint_retry_events() AS moved;
SELECT test.st23(:two) AS moved_back;
SELECT pgque.force_tick('q23') IS NOT NULL AS ticked;
SELECT test.st23(:two) AS retry_pending;
SELECT test.ids('q23', 'a') = ARRAY[:two]::bigint[] AS a_receives_retry;
SELECT test.st23(:two) AS retry_handed_out;
SELECT pgque.nack(test.piece('q23', 'a'), :two, NULL, 'boom again') AS nacked;
SELECT pgque.ack(test.piece('q23', 'a')) AS a_acked;
SELECT test.st23(:two) AS dead;
SELECT reason, dead_at IS NOT NULL AS has_dead_at, payload
  FROM pgque.message_status('q23', :two) WHERE consumer_name = 'a';
-- b gets both; afterwards both are done for b.
SELECT test.ids('q23', 'b') = ARRAY[:one, :two]::bigint[] AS b_receives_both;
SELECT pgque.ack(test.piece('q23', 'b')) AS b_acked;
SELECT test.st23(:one) AS one_done, test.st23(:two) AS two_done_for_b;

-- Delayed: every consumer sees it delayed, with its due time; cancelled
-- once cancel_scheduled took it back.
SELECT pgque.send_at('q23', 'later', 'three', now() + interval '1 hour') AS three \gset
SELECT test.st23(:three) AS delayed;
SELECT bool_and(due_at > now()) AS due_later, min(payload) AS payload
  FROM pgque.message_status('q23', :three);
SELECT pgque.cancel_scheduled('q23', :three) AS cancelled;
SELECT test.st23(:three) AS cancelled;

-- Workers: the worker holding the window and its lease.
SELECT pgque.subscribe('q23', 'w');
SELECT pgque.send('q23', 'job', 'four') AS four \gset
SELECT pgque.force_tick('q23') IS NOT NULL AS ticked;
SELECT count(*) AS got FROM pgque.receive('q23', 'w', 10, 'w1', '1 minute');
SELECT test.st23(:four) AS worker_has_it;
SELECT lease_until > now() AS leased FROM pgque.message_status('q23', :four) WHERE consumer_name = 'w';
SELECT pgque.ack(test.piece('q23', 'w', 'w1')) AS w1_acked;
SELECT test.st23(:four) AS worker_done;

-- An id nothing holds is unknown, not an error; a queue without consumers
-- answers for the queue.
SELECT test.st23(-1) AS unknown;
SELECT pgque.create_queue('q23_none');
SELECT pgque.send('q23_none', 'job', 'five') AS five \gset
SELECT consumer_name, state, payload FROM pgque.message_status('q23_none', :five);
SELECT consumer_name, state FROM pgque.message_status('q23_none', -1);

-- Bad input.
SELECT test.err($$SELECT * FROM pgque.message_status('q23_nope', 1)$$) AS unknown_queue;
SELECT test.err($$SELECT * FROM pgque.message_status('q23', NULL)$$) AS null_id;

---------------------------------------------------------------------------
-- list_messages: pending for a consumer in msg_id order with a cursor,
-- retrying, dead and delayed, filtered by type and time; none moves a
-- position.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q23l');
SELECT pgque.subscribe('q23l', 'a');
SELECT pgque.subscribe('q23l', 'b');
SELECT pgque.set_queue_config('q23l', 'max_retries', '0');
SELECT min(id) AS l1 FROM unnest(pgque.send_batch('q23l', 'x', ARRAY['p1', 'p2', 'p3', 'p4', 'p5'])) id \gset
SELECT clock_timestamp() AS mid \gset
SELECT pgque.send('q23l', 'y', 'p6') AS l6 \gset
SELECT pgque.force_tick('q23l') IS NOT NULL AS ticked;
SELECT pgque.send('q23l', 'x', 'p7') AS l7 \gset
CREATE TABLE test.l23_base (x bigint);
INSERT INTO test.l23_base VALUES (:l1);
-- test.l23(...): msg_id - l1 (so ids read the same in any run), state, consumer.
CREATE FUNCTION test.l23(st text, who text, n int DEFAULT 100, after bigint DEFAULT NULL, typ text DEFAULT NULL,
                         since timestamptz DEFAULT NULL, until timestamptz DEFAULT NULL) RETURNS text LANGUAGE sql AS $$
    SELECT coalesce(string_agg((msg_id - (SELECT min(x) FROM test.l23_base x))::text || ':' || state
                               || coalesce('/' || consumer_name, ''), ' '), '')
      FROM pgque.list_messages('q23l', st, who, n, after, typ, since, until)
$$;
SELECT count(*) AS a_got FROM pgque.receive('q23l', 'a', 2);
SELECT test.l23('pending', 'a', 3) AS first_page;
SELECT test.l23('pending', 'a', 3, :l1 + 2) AS next_page;
SELECT test.l23('pending', 'a', typ => 'y') AS of_type_y;
SELECT test.l23('pending', 'a', since => :'mid') AS sent_since_mid, test.l23('pending', 'a', until => :'mid') AS sent_before_mid;
-- looking moved nothing: a is handed the same two again, b everything ticked
SELECT array_agg(msg_id - :l1 ORDER BY msg_id) AS a_again FROM pgque.receive('q23l', 'a', 2);
SELECT count(*) AS b_got FROM pgque.receive('q23l', 'b', 100);
-- a nacks its first (retrying, an hour from now) and second (dead), acks them
SELECT pgque.set_queue_config('q23l', 'max_retries', '1');
SELECT pgque.nack(test.piece('q23l', 'a'), :l1, interval '1 hour', 'later') AS nacked;
SELECT pgque.set_queue_config('q23l', 'max_retries', '0');
SELECT pgque.nack(test.piece('q23l', 'a'), :l1 + 1, NULL, 'bad') AS nacked;
SELECT pgque.ack(test.piece('q23l', 'a')) AS a_acked;
SELECT test.l23('pending', 'a') AS a_pending;
SELECT test.l23('retrying', 'a') AS a_retrying, test.l23('retrying', NULL) AS all_retrying,
       test.l23('retrying', NULL, since => now() + interval '2 hours') AS due_later_than_two_hours;
SELECT test.l23('dead', NULL) AS dead, test.l23('dead', 'b') AS b_dead;
SELECT reason, retry_count, payload FROM pgque.list_messages('q23l', 'dead');
SELECT consumer_name, reason, retry_count FROM pgque.list_messages('q23l', 'retrying');
-- every consumer dead-letters one message: a page of 1 holds both rows
SELECT pgque.nack(test.piece('q23l', 'b'), :l1 + 2, NULL, 'b fails') AS nacked;
SELECT pgque.nack(test.piece('q23l', 'b'), :l1 + 1, NULL, 'b fails') AS nacked;
SELECT test.l23('dead', NULL, 1) AS one_message, test.l23('dead', NULL, 1, :l1 + 1) AS after_it;
SELECT pgque.send_at('q23l', 'later', 'p8', now() + interval '1 hour') AS l8 \gset
SELECT pgque.send_at('q23l', 'later', 'p9', now() + interval '3 hours') AS l9 \gset
SELECT test.l23('delayed', NULL) AS delayed, test.l23('delayed', NULL, until => now() + interval '2 hours') AS due_soon;
-- bad input
SELECT test.err($$SELECT * FROM pgque.list_messages('q23l', 'pending')$$) AS pending_needs_consumer;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23l', 'done', 'a')$$) AS bad_state;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23l', NULL, 'a')$$) AS null_state;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23l', 'dead', 'nobody')$$) AS unknown_consumer;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23l', 'dead', max_return => 0)$$) AS max_zero;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23_nope', 'dead')$$) AS unknown_queue;
DROP TABLE test.l23_base;
SELECT pgque.drop_queue('q23l', true);

-- Readers may look; writers may not.
CREATE ROLE t23_writer IN ROLE pgque_writer;
CREATE ROLE t23_reader IN ROLE pgque_reader;
GRANT USAGE ON SCHEMA test TO t23_writer, t23_reader;
SET ROLE t23_writer;
SELECT test.err($$SELECT * FROM pgque.message_status('q23', 1)$$) AS writer;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23', 'dead')$$) AS writer_lists;
SELECT test.err($$SELECT * FROM pgque.cancel('q23', -1)$$) AS writer_cancels;
SET ROLE t23_reader;
SELECT test.err($$SELECT * FROM pgque.message_status('q23', 1)$$) AS reader;
SELECT test.err($$SELECT * FROM pgque.list_messages('q23', 'dead')$$) AS reader_lists;
SELECT test.err($$SELECT * FROM pgque.cancel('q23', -1)$$) AS reader_cancels;
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM t23_writer, t23_reader;
DROP ROLE t23_writer, t23_reader;
SELECT pgque.drop_queue('q23', true), pgque.drop_queue('q23_none', true);

---------------------------------------------------------------------------
-- cancel: pending, not ticked, retrying, delayed and handed-out messages;
-- for one consumer or all; a cancelled message is never handed out, a
-- nack of it says so, the heartbeat of its piece returns 2; maint()
-- forgets cancellations once rotation reclaimed their messages.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q23c');
SELECT pgque.subscribe('q23c', 'a');
SELECT pgque.subscribe('q23c', 'b');
SELECT min(id) AS c1 FROM unnest(pgque.send_batch('q23c', 'x', ARRAY['c1', 'c2', 'c3', 'c4'])) id \gset
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT pgque.send('q23c', 'x', 'c5') AS c5 \gset
-- c1 handed out to a; c2 cancelled for everyone; c3 for b only; c5 before its tick
SELECT count(*) AS a_got FROM pgque.receive('q23c', 'a', 1);
SELECT * FROM pgque.cancel('q23c', :c1);
SELECT * FROM pgque.cancel('q23c', :c1 + 1);
SELECT * FROM pgque.cancel('q23c', :c1 + 2, 'b');
SELECT * FROM pgque.cancel('q23c', :c5);
SELECT * FROM pgque.cancel('q23c', :c1 + 1);
SELECT consumer_name, state, worker_name FROM pgque.message_status('q23c', :c1 + 1);
-- a's heartbeat of the piece holding c1 says a message was cancelled; its
-- nack of c1 neither retries nor dead-letters it
SELECT pgque.heartbeat(test.piece('q23c', 'a')) AS heartbeat;
SELECT array_agg(x - :c1) AS stop_handling FROM pgque.cancelled_messages(test.piece('q23c', 'a')) x;
SELECT pgque.nack(test.piece('q23c', 'a'), :c1) AS nacked;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(msg_id - :c1 ORDER BY msg_id) AS a_gets FROM pgque.receive('q23c', 'a', 100);
SELECT pgque.heartbeat(test.piece('q23c', 'a')) AS heartbeat_clean;
SELECT count(*) AS none_to_stop FROM pgque.cancelled_messages(test.piece('q23c', 'a'));
SELECT count(*) AS unknown_piece FROM pgque.cancelled_messages(-1);
SELECT test.err($$SELECT * FROM pgque.cancelled_messages(NULL)$$) AS null_piece;
SELECT array_agg(msg_id - :c1 ORDER BY msg_id) AS b_gets FROM pgque.receive('q23c', 'b', 100);
SELECT pgque.ack(test.piece('q23c', 'a')), pgque.ack(test.piece('q23c', 'b'));
SELECT count(*) AS retries, (SELECT count(*) FROM pgque.dead_letter d JOIN pgque.queue q ON q.queue_id = d.dl_queue
                              WHERE q.queue_name = 'q23c') AS dead
  FROM pgque.retry_queue r JOIN pgque.queue q ON q.queue_id = r.rq_queue WHERE q.queue_name = 'q23c';
-- done is too late
SELECT * FROM pgque.cancel('q23c', :c1 + 3);
-- a retrying message: its retry is dropped and never comes back
SELECT pgque.send('q23c', 'x', 'c6') AS c6 \gset
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT count(*) AS a_got FROM pgque.receive('q23c', 'a', 10);
SELECT pgque.nack(test.piece('q23c', 'a'), :c6, interval '0') AS nacked;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT * FROM pgque.cancel('q23c', :c6, 'a');
SELECT pgque.maint_retry_events() AS moved;
-- a retry copy already moved back when it is cancelled: skipped when its
-- batch comes, and only that batch's queries check the cancellations
SELECT pgque.send('q23c', 'x', 'c8') AS c8 \gset
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(msg_id - :c8) AS a_got FROM pgque.receive('q23c', 'a', 10);
SELECT pgque.nack(test.piece('q23c', 'a'), :c8, interval '0') AS nacked;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT pgque.maint_retry_events() AS moved;
SELECT * FROM pgque.cancel('q23c', :c8, 'a');
SELECT pgque.send('q23c', 'x', 'c9') AS c9 \gset
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(msg_id - :c8) AS a_gets_c9_only FROM pgque.receive('q23c', 'a', 10);
CREATE FUNCTION test.checks_cancels(consumer text) RETURNS boolean LANGUAGE sql AS $$
    SELECT (pgque._batch_ctx(s)).cancels IS NOT NULL
      FROM pgque.subscription s JOIN pgque.queue q ON q.queue_id = s.sub_queue
     WHERE q.queue_name = 'q23c' AND s.sub_consumer = consumer AND s.sub_parent IS NULL
$$;
SELECT test.checks_cancels('a') AS copy_in_range;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT pgque.send('q23c', 'x', 'c10') IS NOT NULL AS sent;
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT count(*) AS a_got FROM pgque.receive('q23c', 'a', 10);
SELECT test.checks_cancels('a') AS none_in_range,
       (SELECT count(*) FROM pgque.cancelled x JOIN pgque.queue q ON q.queue_id = x.cx_queue
         WHERE q.queue_name = 'q23c') AS stored;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
-- a delayed message is cancelled for every consumer
SELECT pgque.send_at('q23c', 'later', 'c7', now() + interval '1 hour') AS c7 \gset
SELECT * FROM pgque.cancel('q23c', :c7);
SELECT * FROM pgque.cancel('q23c', -1);
SELECT test.err($$SELECT * FROM pgque.cancel('q23c', NULL)$$) AS null_id;
SELECT test.err($$SELECT * FROM pgque.cancel('q23c', 1, 'nobody')$$) AS unknown_consumer;
SELECT test.err($$SELECT * FROM pgque.cancel('q23_nope', 1)$$) AS unknown_queue;
-- a straggler (running at one tick, committed by the next) cancelled
-- before its batch: skipped, whether cancelled for everyone or for a only
-- (its txid lies below the batch's range, so only the stragglers' probes
-- of _batch_ctx find it)
SELECT dblink_connect('w23', 'dbname=' || current_database());
SELECT dblink_exec('w23', 'BEGIN');
SELECT id AS straggler FROM dblink('w23', $$SELECT pgque.send('q23c', 'x', 'straggler')$$) AS t(id bigint) \gset
SELECT pgque.send('q23c', 'x', 'early') IS NOT NULL AS sent;
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS early FROM pgque.receive('q23c', 'a', 10);
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT dblink_exec('w23', 'COMMIT');
SELECT * FROM pgque.cancel('q23c', :straggler, NULL);
SELECT pgque.send('q23c', 'x', 'late') IS NOT NULL AS sent;
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS for_everyone FROM pgque.receive('q23c', 'a', 10);
SELECT test.checks_cancels('a') AS straggler_checked;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT dblink_exec('w23', 'BEGIN');
SELECT id AS straggler FROM dblink('w23', $$SELECT pgque.send('q23c', 'x', 'straggler')$$) AS t(id bigint) \gset
SELECT pgque.send('q23c', 'x', 'early') IS NOT NULL AS sent;
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS early FROM pgque.receive('q23c', 'a', 10);
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT dblink_exec('w23', 'COMMIT');
SELECT * FROM pgque.cancel('q23c', :straggler, 'a');
SELECT pgque.send('q23c', 'x', 'late') IS NOT NULL AS sent;
SELECT pgque.force_tick('q23c') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS for_a FROM pgque.receive('q23c', 'a', 10);
SELECT test.checks_cancels('a') AS straggler_checked;
SELECT pgque.ack(test.piece('q23c', 'a')) AS a_acked;
SELECT dblink_disconnect('w23');
-- the event path stayed insert-only through all of it (cancel, nack,
-- retry, heartbeat, message_status, cancelled_messages): no row of q23c's
-- event tables was updated or deleted
SELECT count(*) AS status_rows FROM pgque.message_status('q23c', :c1);
SELECT pg_stat_force_next_flush();
SET stats_fetch_consistency = none;
SELECT sum(s.n_tup_upd + s.n_tup_del) AS changed, sum(s.n_tup_ins) > 0 AS inserted
  FROM pgque.queue q CROSS JOIN generate_series(0, q.queue_ntables - 1) g
  JOIN pg_stat_user_tables s ON s.relid = pgque._event_table(q.queue_id, g)::regclass
 WHERE q.queue_name = 'q23c';
RESET stats_fetch_consistency;
-- rotation: once every table that held them was reclaimed, maint() forgets them
SELECT count(*) AS stored FROM pgque.cancelled x JOIN pgque.queue q ON q.queue_id = x.cx_queue WHERE q.queue_name = 'q23c';
SELECT pgque._forget_cancelled() AS forgotten_too_early;
UPDATE pgque.cancelled x SET cx_gen = cx_gen - 3 FROM pgque.queue q WHERE q.queue_id = x.cx_queue AND q.queue_name = 'q23c';
SELECT pgque._forget_cancelled() AS forgotten;
SELECT pgque.drop_queue('q23c', true);
