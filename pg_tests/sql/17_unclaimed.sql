-- 17_unclaimed: events sent while a queue has no consumer are kept for the
-- first consumer that subscribes (06_subscription.sql), and shown by
-- get_queue_info(); they hold back rotation until then; keep_unclaimed off
-- lets them go.  And peek(): a look that moves nothing.
--
-- Rotation rounds sleep 10 ms for the 1 ms rotation period, as in
-- 07_rotation, so that only the guard decides.

SELECT pgque.create_queue('q17');
SELECT queue_id AS qid FROM pgque.queue WHERE queue_name = 'q17' \gset
-- test.info17(): what get_queue_info() says of unclaimed events, and
-- get_unclaimed_info(), which counts only ticked ones (NULL: not listed).
CREATE FUNCTION test.info17() RETURNS TABLE (consumers int, keep_unclaimed boolean, unclaimed_events bigint,
                                            has_since boolean, ticked_unclaimed bigint, same_since boolean)
LANGUAGE sql AS $$
    SELECT i.consumers, i.keep_unclaimed, i.unclaimed_events, i.unclaimed_since IS NOT NULL,
           u.unclaimed_events, u.unclaimed_since = i.unclaimed_since
      FROM pgque.get_queue_info('q17') i LEFT JOIN pgque.get_unclaimed_info() u USING (queue_name)
$$;
SELECT * FROM test.info17();

---------------------------------------------------------------------------
-- Jobs sent, and ticked, before any consumer exists: the first consumer
-- gets them all; one that subscribes later starts from now on.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q17', 'job', ARRAY['j1', 'j2', 'j3'])) AS sent;
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT pgque.send('q17', 'job', 'j4') IS NOT NULL AS sent_after_the_tick;
SELECT * FROM test.info17();
SELECT pgque.subscribe('q17', 'workers');
SELECT * FROM test.info17();
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS first_consumer_got FROM pgque.receive('q17', 'workers', 100);
SELECT pgque.ack(test.piece('q17', 'workers')) AS ack;
SELECT pgque.subscribe('q17', 'audit');
SELECT count(*) AS later_consumer_got FROM pgque.receive('q17', 'audit', 100);
SELECT pgque.send('q17', 'job', 'j5') IS NOT NULL AS sent;
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT c, test.drain('q17', c) AS got FROM unnest(ARRAY['workers', 'audit']) c;

---------------------------------------------------------------------------
-- The last consumer leaves: what is sent from then on waits for the next.
---------------------------------------------------------------------------
SELECT pgque.unsubscribe('q17', 'audit');
SELECT * FROM test.info17();
SELECT pgque.unsubscribe('q17', 'workers');
SELECT * FROM test.info17();
SELECT pgque.send('q17', 'job', 'j6') IS NOT NULL AS sent;
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT * FROM test.info17();
SELECT pgque.subscribe('q17', 'workers');
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT test.drain('q17', 'workers') = ARRAY(SELECT max(ev_id) FROM pgque.event WHERE ev_data = 'j6') AS got_j6;

---------------------------------------------------------------------------
-- Unclaimed events hold back rotation: with no consumer, the queue's
-- tables switch until the one holding them would be reused, then stop;
-- the first consumer still gets them, and rotation goes on once it is past.
---------------------------------------------------------------------------
SELECT pgque.unsubscribe('q17', 'workers');
SELECT pgque.set_queue_config('q17', 'rotation_period', '1 millisecond');
SELECT pgque.send('q17', 'job', 'kept') AS kept_id \gset
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT queue_gen AS gen0 FROM pgque.queue WHERE queue_id = :qid \gset
-- pg_temp.rotate17(n, consumer): n rounds of send, tick, (the consumer
-- drains, when named), maint() and step 2, each in its own transaction.
CREATE PROCEDURE pg_temp.rotate17(n int, consumer text) LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. n LOOP
        PERFORM pgque.send('q17', 'job', 'filler');
        COMMIT;
        PERFORM pgque.force_tick('q17');
        COMMIT;
        IF consumer IS NOT NULL THEN
            PERFORM test.drain('q17', consumer);
            COMMIT;
        END IF;
        PERFORM pg_sleep(0.01);
        COMMIT;
        PERFORM pgque.maint();
        COMMIT;
        PERFORM pgque.maint_rotate_tables_step2();
        COMMIT;
    END LOOP;
END
$$;
CALL pg_temp.rotate17(6, NULL);
SELECT queue_gen - :gen0 AS switches_while_unclaimed FROM pgque.queue WHERE queue_id = :qid;
SELECT unclaimed_events >= 7 AS counted FROM test.info17();
SELECT pgque.subscribe('q17', 'late');
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT (test.drain('q17', 'late'))[1] = :kept_id AS first_consumer_got_the_kept_event;
SELECT queue_gen AS gen1 FROM pgque.queue WHERE queue_id = :qid \gset
CALL pg_temp.rotate17(4, 'late');
SELECT queue_gen - :gen1 AS switches_with_a_consumer FROM pgque.queue WHERE queue_id = :qid;

---------------------------------------------------------------------------
-- keep_unclaimed off: a queue without consumers keeps nothing for later
-- (its events go with rotation), and a new consumer starts from now on.
-- Turned on again, it keeps what is sent from then on.  Bad values: PQ006.
---------------------------------------------------------------------------
SELECT pgque.unsubscribe('q17', 'late');
SELECT pgque.set_queue_config('q17', 'keep_unclaimed', 'false');
SELECT * FROM test.info17();
SELECT pgque.send('q17', 'job', 'dropped') IS NOT NULL AS sent;
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT pgque.subscribe('q17', 'c');
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT count(*) AS nothing_for_c FROM pgque.receive('q17', 'c', 10);
SELECT pgque.unsubscribe('q17', 'c');
SELECT * FROM test.info17();
SELECT pgque.set_queue_config('q17', 'keep_unclaimed', 'on');
SELECT * FROM test.info17();
SELECT test.err($$SELECT pgque.set_queue_config('q17', 'keep_unclaimed', 'maybe')$$) AS bad_value;
SELECT test.err($$SELECT pgque.set_queue_config('q17', 'keep_unclaimed', NULL)$$) AS null_value;
-- with consumers, turning it on keeps nothing: they read everything
SELECT pgque.subscribe('q17', 'c');
SELECT pgque.set_queue_config('q17', 'keep_unclaimed', 'true');
SELECT * FROM test.info17();

---------------------------------------------------------------------------
-- peek: what a consumer has not acknowledged, moving nothing.  It shows the
-- open batch (what was handed out, and the rest), then what the next
-- receive would open; its positions and states are unchanged after it.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q17', 'job', ARRAY['a1', 'a2', 'a3'])) AS sent;
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS handed_out FROM pgque.receive('q17', 'c', 2);
SELECT pgque.send('q17', 'job', 'a4') IS NOT NULL AS sent;
SELECT pgque.force_tick('q17') IS NOT NULL AS ticked;
SELECT (SELECT count(*) FROM pgque.sub_state) AS states, last_tick, current_batch
  FROM pgque.get_consumer_info('q17', 'c') \gset
SELECT payload, batch_id = :current_batch AS in_open_batch, worker_name FROM pgque.peek('q17', 'c');
SELECT payload FROM pgque.peek('q17', 'c', 2);
SELECT (SELECT count(*) FROM pgque.sub_state) = :states AS nothing_saved, last_tick = :last_tick AS same_position,
       current_batch = :current_batch AS same_batch
  FROM pgque.get_consumer_info('q17', 'c');
-- peek does not take the consumer's lock: it runs beside a receive in progress
SELECT dblink_connect('r17', 'dbname=' || current_database());
SELECT dblink_exec('r17', 'BEGIN');
SELECT n FROM dblink('r17', $$SELECT count(*) FROM pgque.receive('q17', 'c', 10)$$) AS t(n bigint);
SET lock_timeout = '2s';
SELECT count(*) AS peeked_beside_a_receive FROM pgque.peek('q17', 'c');
RESET lock_timeout;
SELECT dblink_exec('r17', 'ROLLBACK');
SELECT dblink_disconnect('r17');
SELECT test.drain('q17', 'c') IS NOT NULL AS drained;
SELECT count(*) AS nothing_to_peek FROM pgque.peek('q17', 'c');
-- peek needs the receive right, as receive does
SELECT pgque.create_queue('acme17.q');
SELECT pgque.subscribe('acme17.q', 'c');
CREATE ROLE t_peek17;
GRANT pgque_tenant TO t_peek17;
GRANT USAGE ON SCHEMA test TO t_peek17;
SELECT pgque.grant_access('t_peek17', 'inspect', 'acme17');
SET SESSION AUTHORIZATION t_peek17;  -- tenants are checked by login role (15_namespace)
SELECT test.err($$SELECT * FROM pgque.peek('acme17.q', 'c')$$) AS inspect_only;
RESET SESSION AUTHORIZATION;
SELECT pgque.grant_access('t_peek17', 'receive', 'acme17');
SET SESSION AUTHORIZATION t_peek17;
SELECT count(*) AS with_receive FROM pgque.peek('acme17.q', 'c');
RESET SESSION AUTHORIZATION;
SELECT pgque.revoke_access('t_peek17', 'inspect', 'acme17'), pgque.revoke_access('t_peek17', 'receive', 'acme17');
REVOKE USAGE ON SCHEMA test FROM t_peek17;
DROP ROLE t_peek17;
SELECT pgque.drop_queue('acme17.q', true);

DROP FUNCTION test.info17();
SELECT pgque.drop_queue('q17', true);
