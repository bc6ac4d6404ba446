-- 23_outcomes: snooze() and reject(), the outcomes of one message besides
-- nack (06_retry_dlq): a snoozed message comes back to its consumer only,
-- with its retry count as it was, and is never dead-lettered for it; a
-- rejected one goes to the dead letters at once, retries left or not.  A
-- message is settled once.  Batch ids are masked as in 06_retry_dlq.

CREATE FUNCTION pg_temp.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN r ELSE left(r, 7) || regexp_replace(substr(r, 8), '[0-9]+', 'N', 'g') END
      FROM test.err(sql) r
$$;
-- pg_temp.got(queue, consumer [, worker]): receive one piece; its messages
-- as (payload, retry_count), keeping the piece open; pg_temp.id(payload)
-- is the msg id a payload was last received with.
CREATE TEMP TABLE seen (msg_id bigint, payload text);
CREATE FUNCTION pg_temp.got(q text, c text, w text DEFAULT NULL) RETURNS TABLE (payload text, retry_count int)
LANGUAGE sql AS $$
    WITH r AS (SELECT * FROM pgque.receive(q, c, 100, w)),
         s AS (INSERT INTO seen SELECT r.msg_id, r.payload FROM r)
    SELECT r.payload, r.retry_count FROM r ORDER BY r.msg_id
$$;
CREATE FUNCTION pg_temp.id(p text) RETURNS bigint LANGUAGE sql AS $$
    SELECT max(msg_id) FROM seen WHERE payload = p
$$;

SELECT pgque.create_queue('q23');
SELECT pgque.subscribe('q23', c) FROM unnest(ARRAY['a', 'b']) c;
SELECT pgque.set_queue_config('q23', 'max_retries', '1');
SELECT pgque.set_queue_config('q23', 'retry_backoff_base', '0');
SELECT pgque.send('q23', 't', p) IS NOT NULL AS sent FROM unnest(ARRAY['snooze-me', 'reject-me', 'fail-me']) p;
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');

-- bad input: nothing changes
SELECT pg_temp.e($$SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('snooze-me'), NULL)$$);
SELECT pg_temp.e($$SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('snooze-me'), '-1 second')$$);
SELECT pg_temp.e($$SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('snooze-me'), '101 years')$$);
SELECT pg_temp.e($$SELECT pgque.snooze(test.piece('q23', 'a'), NULL, '1 second')$$);
SELECT pg_temp.e($$SELECT pgque.reject(test.piece('q23', 'a'), NULL)$$);
SELECT pg_temp.e($$SELECT pgque.snooze(-5, 1, '1 second')$$);
SELECT pg_temp.e($$SELECT pgque.reject(test.piece('q23', 'a'), -1)$$);
SELECT count(*) AS b_got FROM pg_temp.got('q23', 'b');
SELECT (SELECT count(*) FROM pgque.retry_queue) AS retries, (SELECT count(*) FROM pgque.dead_letter) AS dead;

-- the outcomes; each repeated (or crossed) changes nothing and says what was done
SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('snooze-me'), '0');
SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('snooze-me'), '1 hour');
SELECT pgque.reject(test.piece('q23', 'a'), pg_temp.id('snooze-me'), 'too late');
SELECT pgque.reject(test.piece('q23', 'a'), pg_temp.id('reject-me'), 'bad payload');
SELECT pgque.reject(test.piece('q23', 'a'), pg_temp.id('reject-me'), 'again');
SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('reject-me'), '0');
SELECT pgque.nack(test.piece('q23', 'a'), pg_temp.id('fail-me'), '0', 'boom');
SELECT test.piece('q23', 'a') AS p1 \gset
SELECT pgque.ack(:p1);
SELECT pg_temp.e(format('SELECT pgque.snooze(%s, %s, %L)', :p1, pg_temp.id('fail-me'), '0')) AS after_ack;
SELECT pg_temp.e(format('SELECT pgque.reject(%s, %s)', :p1, pg_temp.id('fail-me'))) AS after_ack;
-- the dead letter: reason kept, retry count as delivered (a first delivery)
SELECT consumer_name, reason, payload, retry_count FROM pgque.dlq_list('q23');

-- a snoozed first delivery comes back as a first delivery; the failed one
-- with count 1; only to a
SELECT pgque.maint_retry_events();
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');
SELECT pgque.ack(test.piece('q23', 'b'));
SELECT count(*) AS b_again FROM pg_temp.got('q23', 'b');
-- snoozing after failures keeps the count, and never dead-letters: fail-me
-- has used its one retry, yet snoozes
SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id(p), '0') FROM unnest(ARRAY['fail-me', 'snooze-me']) p;
-- a nack after the snooze leaves it snoozed: fail-me would be dead now
SELECT pgque.nack(test.piece('q23', 'a'), pg_temp.id('fail-me'), '0', 'late failure') AS nack_after_snooze;
SELECT pgque.ack(test.piece('q23', 'a'));
SELECT pgque.maint_retry_events();
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');
SELECT pgque.ack(test.piece('q23', 'a'));
-- a snooze into the future waits
SELECT pgque.send('q23', 't', 'later') IS NOT NULL AS sent;
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');
SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('later'), '1 hour');
SELECT pgque.ack(test.piece('q23', 'a'));
SELECT pgque.maint_retry_events() AS moved;
SELECT rq_due > now() + interval '59 minutes' AS waits, ev_retry IS NULL AS no_failure_counted FROM pgque.retry_queue;

-- a worker's snooze and reject belong to its consumer
SELECT pgque.send('q23', 't', p) IS NOT NULL AS sent FROM unnest(ARRAY['w-snooze', 'w-reject']) p;
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'b', 'w1');
SELECT pgque.snooze(test.piece('q23', 'b', 'w1'), pg_temp.id('w-snooze'), '0');
SELECT pgque.reject(test.piece('q23', 'b', 'w1'), pg_temp.id('w-reject'), 'no');
SELECT pgque.ack(test.piece('q23', 'b', 'w1'));
SELECT consumer_name, payload FROM pgque.dlq_list('q23') ORDER BY payload;
SELECT s.sub_consumer, r.ev_data FROM pgque.retry_queue r JOIN pgque.subscription s ON s.sub_id = r.rq_sub
 ORDER BY 2;

-- a message cancelled while handed out: nothing left to settle
SELECT pgque.send('q23', 't', 'c-me') IS NOT NULL AS sent;
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');
SELECT consumer_name, outcome FROM pgque.cancel('q23', pg_temp.id('c-me'), 'a');
SELECT pgque.snooze(test.piece('q23', 'a'), pg_temp.id('c-me'), '0');
SELECT pgque.reject(test.piece('q23', 'a'), pg_temp.id('c-me'), 'no');
SELECT pgque.ack(test.piece('q23', 'a'));
SELECT count(*) AS stored FROM pgque.retry_queue r JOIN pgque.subscription s ON s.sub_id = r.rq_sub
 WHERE r.ev_data = 'c-me';

-- the handler's cancel: cancelled for a only, settled once, never back
SELECT pgque.send('q23', 't', p) IS NOT NULL AS sent FROM unnest(ARRAY['drop-me', 'drop-nack']) p;
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');
SELECT pgque.cancel_message(test.piece('q23', 'a'), pg_temp.id('drop-me')) AS cancelled;
SELECT pgque.cancel_message(test.piece('q23', 'a'), pg_temp.id('drop-me')) AS again;
SELECT pgque.nack(test.piece('q23', 'a'), pg_temp.id('drop-me'), '0') AS nack_after;
SELECT pgque.nack(test.piece('q23', 'a'), pg_temp.id('drop-nack'), '0') AS nacked;
SELECT pgque.cancel_message(test.piece('q23', 'a'), pg_temp.id('drop-nack')) AS cancel_after_nack;
SELECT pg_temp.e($$SELECT pgque.cancel_message(test.piece('q23', 'a'), NULL)$$);
SELECT pg_temp.e($$SELECT pgque.cancel_message(test.piece('q23', 'a'), -1)$$);
SELECT pgque.ack(test.piece('q23', 'a'));
SELECT consumer_name, state FROM pgque.message_status('q23', pg_temp.id('drop-me'));
SELECT pgque.maint_retry_events() AS moved;
SELECT pgque.ticker('q23') IS NOT NULL AS ticked;
SELECT * FROM pg_temp.got('q23', 'a');
SELECT pgque.ack(test.piece('q23', 'a'));

SELECT pgque.drop_queue('q23', true);
