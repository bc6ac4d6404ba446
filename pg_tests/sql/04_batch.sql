-- 04_batch: how events become batches.  The snapshot rule (send, tick and
-- receive in separate transactions), fan-out, late subscribers, rolled-back
-- and long-running producers, redelivery of an unfinished batch, the PgQ
-- batch API (next_batch, get_batch_events, finish_batch, get_batch_info) and
-- merging of several ticks into one batch.
--
-- Nothing printed depends on txids, tick ids, batch ids or times: such values
-- are captured with \gset and only compared.  msg ids are per-queue sequences
-- (1, 2, 3, ...) and therefore deterministic.

-- pg_temp.e(sql): like test.err, with the numbers in the message (batch ids)
-- masked, keeping the SQLSTATE as is.
CREATE FUNCTION pg_temp.e(sql text) RETURNS text LANGUAGE sql AS $$
    SELECT CASE WHEN r = 'ok' THEN r ELSE left(r, 7) || regexp_replace(substr(r, 8), '[0-9]+', 'N', 'g') END
      FROM test.err(sql) r
$$;
-- Everything every consumer received in this file, to check exactly-once.
CREATE TEMP TABLE got (q text, c text, id bigint, step int, n serial);

SELECT pgque.create_queue('q04_a');
SELECT pgque.subscribe('q04_a', 'c1');

---------------------------------------------------------------------------
-- Snapshot rule: an event sent and committed, then ticked in a later
-- transaction, is received in a third one.  Before the tick nothing is
-- received; an event sent after the tick is not part of that batch.
---------------------------------------------------------------------------
SELECT pgque.send('q04_a', 't', 'e1');
SELECT test.ids('q04_a', 'c1');                 -- not ticked yet: nothing
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT pgque.send('q04_a', 't', 'e2');          -- after the tick
SELECT msg_id, type, payload, retry_count FROM pgque.receive('q04_a', 'c1', 10);
SELECT pgque.ack(test.piece('q04_a', 'c1'));
SELECT test.ids('q04_a', 'c1');                 -- e2 waits for the next tick
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1');               -- now e2, once

---------------------------------------------------------------------------
-- An event sent in the same transaction as the tick.  PgQ's "snapshot rule"
-- says it usually misses that tick (the tick's snapshot cannot see its own,
-- still uncommitted transaction), but it may be counted in it when a later
-- xid committed before the tick.  Both are safe, because the tick and the
-- event commit together: we assert only that it is delivered exactly once
-- over this tick and the next one.
---------------------------------------------------------------------------
BEGIN;
SELECT pgque.send('q04_a', 't', 'same-tx');
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
COMMIT;
INSERT INTO got SELECT 'q04_a', 'c1', unnest(test.drain('q04_a', 'c1'));
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_a', 'c1', unnest(test.drain('q04_a', 'c1'));
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_a', 'c1', unnest(test.drain('q04_a', 'c1'));
SELECT array_agg(id ORDER BY id) AS same_tx_delivered FROM got WHERE q = 'q04_a' AND c = 'c1';
TRUNCATE got;

---------------------------------------------------------------------------
-- Fan-out: three consumers each receive every event.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q04_fan');
SELECT pgque.subscribe('q04_fan', c) FROM unnest(ARRAY['f1', 'f2', 'f3']) c;
SELECT pgque.send('q04_fan', 't', 'p' || i) FROM generate_series(1, 5) i;
SELECT pgque.send('q04_fan', 't', 'p6');
SELECT pgque.force_tick('q04_fan') IS NOT NULL AS ticked;
SELECT c, test.drain('q04_fan', c) FROM unnest(ARRAY['f1', 'f2', 'f3']) c;
-- and the payloads are the ones sent, in order (f1 again after a new event)
SELECT pgque.send('q04_fan', 'kind', '{"k": 7}'::jsonb, 'x1', NULL, 'x3', 'x4');
SELECT pgque.force_tick('q04_fan') IS NOT NULL AS ticked;
SELECT msg_id, type, payload, retry_count, extra1, extra2, extra3, extra4,
       batch_id = test.piece('q04_fan', 'f2') AS batch_is_piece
  FROM pgque.receive('q04_fan', 'f2', 10);

---------------------------------------------------------------------------
-- A consumer subscribed after some events (sent and ticked) gets only the
-- events sent after it subscribed; the earlier consumers get all of them.
---------------------------------------------------------------------------
SELECT pgque.subscribe('q04_fan', 'late');
SELECT pgque.send('q04_fan', 't', 'after-late');
SELECT pgque.force_tick('q04_fan') IS NOT NULL AS ticked;
SELECT test.drain('q04_fan', 'late') AS late_gets;
SELECT c, test.drain('q04_fan', c) FROM unnest(ARRAY['f1', 'f2', 'f3']) c;

---------------------------------------------------------------------------
-- Rolled-back sends are never delivered (their ids are used up, though).
---------------------------------------------------------------------------
BEGIN;
SELECT pgque.send('q04_a', 't', 'rolled back');
ROLLBACK;
BEGIN;
SELECT pgque.send('q04_a', 't', 'rolled back too');
SELECT pgque.send('q04_a', 't', 'and this');
ROLLBACK;
SELECT pgque.send('q04_a', 't', 'kept');
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1') AS only_committed;

---------------------------------------------------------------------------
-- A long transaction (a second session) sends, stays open across two ticks,
-- then commits.  Events committed before and during it are delivered at once,
-- not held back; its own event comes exactly once, in a batch after its commit.
---------------------------------------------------------------------------
SELECT dblink_connect('w1', 'dbname=' || current_database());
SELECT dblink_exec('w1', 'BEGIN');
SELECT * FROM dblink('w1', $$SELECT pgque.send('q04_a', 't', 'long')$$) AS t(long_id bigint);
SELECT pgque.send('q04_a', 't', 'short1');
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1') AS while_open_1;
SELECT pgque.send('q04_a', 't', 'short2');
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1') AS while_open_2;
SELECT dblink_exec('w1', 'COMMIT');
SELECT test.drain('q04_a', 'c1') AS committed_not_ticked;
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1') AS after_commit;
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1') AS nothing_more;

---------------------------------------------------------------------------
-- Several long transactions interleaved with short ones, some aborted:
-- every committed event is delivered exactly once, aborted ones never.
-- A second consumer that only reads at the end sees the same set in one batch.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q04_mix');
SELECT pgque.subscribe('q04_mix', 'steady');
SELECT pgque.subscribe('q04_mix', 'lazy');
SELECT dblink_connect('w2', 'dbname=' || current_database());
SELECT dblink_connect('w3', 'dbname=' || current_database());
CREATE TEMP TABLE sent (id bigint, committed boolean);
-- w1: long, commits; w2: long, aborts; w3: long, commits last
SELECT dblink_exec('w1', 'BEGIN');
INSERT INTO sent SELECT id, true FROM dblink('w1', $$SELECT pgque.send('q04_mix', 't', 'w1-a')$$) AS t(id bigint);
INSERT INTO sent VALUES (pgque.send('q04_mix', 't', 's1'), true);
SELECT dblink_exec('w2', 'BEGIN');
INSERT INTO sent SELECT id, false FROM dblink('w2', $$SELECT pgque.send('q04_mix', 't', 'w2-a')$$) AS t(id bigint);
SELECT pgque.force_tick('q04_mix') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_mix', 'steady', unnest(test.drain('q04_mix', 'steady')), 1;
SELECT dblink_exec('w3', 'BEGIN');
INSERT INTO sent SELECT id, true FROM dblink('w3', $$SELECT pgque.send('q04_mix', 't', 'w3-a')$$) AS t(id bigint);
INSERT INTO sent SELECT id, true FROM dblink('w1', $$SELECT pgque.send('q04_mix', 't', 'w1-b')$$) AS t(id bigint);
INSERT INTO sent VALUES (pgque.send('q04_mix', 't', 's2'), true);
INSERT INTO sent SELECT id, false FROM dblink('w2', $$SELECT pgque.send('q04_mix', 't', 'w2-b')$$) AS t(id bigint);
SELECT pgque.force_tick('q04_mix') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_mix', 'steady', unnest(test.drain('q04_mix', 'steady')), 2;
SELECT dblink_exec('w1', 'COMMIT');
INSERT INTO sent VALUES (pgque.send('q04_mix', 't', 's3'), true);
SELECT pgque.force_tick('q04_mix') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_mix', 'steady', unnest(test.drain('q04_mix', 'steady')), 3;
SELECT dblink_exec('w2', 'ROLLBACK');
INSERT INTO sent SELECT id, true FROM dblink('w3', $$SELECT pgque.send('q04_mix', 't', 'w3-b')$$) AS t(id bigint);
INSERT INTO sent VALUES (pgque.send('q04_mix', 't', 's4'), true);
SELECT pgque.force_tick('q04_mix') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_mix', 'steady', unnest(test.drain('q04_mix', 'steady')), 4;
SELECT dblink_exec('w3', 'COMMIT');
SELECT pgque.force_tick('q04_mix') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_mix', 'steady', unnest(test.drain('q04_mix', 'steady')), 5;
SELECT pgque.force_tick('q04_mix') IS NOT NULL AS ticked;
INSERT INTO got SELECT 'q04_mix', 'steady', unnest(test.drain('q04_mix', 'steady')), 6;
INSERT INTO got SELECT 'q04_mix', 'lazy', unnest(test.drain('q04_mix', 'lazy'));
SELECT count(*) AS sent, count(*) FILTER (WHERE committed) AS committed FROM sent;
-- what 'steady' got after each tick, in delivery order: an event comes in the
-- first batch after its transaction committed, never earlier, never again
-- (1: w1-a, w2-a open; 2: w3 open too; 3: w1 committed; 4: w2 aborted;
-- 5: w3 committed; 6: nothing left)
SELECT s.step, (SELECT array_agg(id ORDER BY n) FROM got g WHERE g.q = 'q04_mix' AND g.c = 'steady' AND g.step = s.step) AS ids
  FROM generate_series(1, 6) s(step) ORDER BY s.step;
SELECT c,
       count(*) AS received,
       count(*) = count(DISTINCT id) AS no_duplicates,
       array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM sent WHERE committed) AS all_committed,
       NOT EXISTS (SELECT 1 FROM sent s WHERE NOT s.committed AND s.id = ANY (array_agg(g.id))) AS no_aborted
  FROM got g WHERE q = 'q04_mix' GROUP BY c ORDER BY c;

---------------------------------------------------------------------------
-- Redelivery: an open batch that was not acked is handed out again: the
-- same events, as a new piece (batch_id) of the same batch.
---------------------------------------------------------------------------
SELECT pgque.send('q04_a', 't', 'r' || i) FROM generate_series(1, 3) i;
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
CREATE TEMP TABLE r1 AS SELECT msg_id, batch_id, payload FROM pgque.receive('q04_a', 'c1', 10);
CREATE TEMP TABLE r2 AS SELECT msg_id, batch_id, payload FROM pgque.receive('q04_a', 'c1', 10);
SELECT msg_id, payload FROM r1 ORDER BY msg_id;
SELECT (SELECT array_agg(msg_id ORDER BY msg_id) FROM r1) = (SELECT array_agg(msg_id ORDER BY msg_id) FROM r2) AS same_events,
       (SELECT count(DISTINCT batch_id) FROM (SELECT batch_id FROM r1 UNION ALL SELECT batch_id FROM r2) b) = 2 AS new_piece;
SELECT pgque.ack(batch_id) FROM r1 LIMIT 1;
SELECT test.ids('q04_a', 'c1') AS after_ack;

-- A consumer (second session) receives, then dies without acking: the next
-- receive, from another session, gets the same events again.
SELECT pgque.send('q04_a', 't', 'crash' || i) FROM generate_series(1, 2) i;
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
CREATE TEMP TABLE rw AS
    SELECT * FROM dblink('w2', $$SELECT msg_id, batch_id FROM pgque.receive('q04_a', 'c1', 10)$$)
        AS t(msg_id bigint, batch_id bigint);
SELECT dblink_disconnect('w2');
SELECT array_agg(msg_id ORDER BY msg_id) AS crashed_got FROM rw;
CREATE TEMP TABLE rm AS SELECT msg_id, batch_id FROM pgque.receive('q04_a', 'c1', 10);
SELECT (SELECT array_agg(msg_id ORDER BY msg_id) FROM rm) = (SELECT array_agg(msg_id ORDER BY msg_id) FROM rw) AS same_events,
       (SELECT count(DISTINCT batch_id) FROM (SELECT batch_id FROM rm UNION ALL SELECT batch_id FROM rw) b) = 2 AS new_piece;
SELECT pgque.ack(batch_id) FROM rm LIMIT 1;

---------------------------------------------------------------------------
-- PgQ API: next_batch_info / next_batch / get_batch_events / get_batch_info /
-- finish_batch.
---------------------------------------------------------------------------
-- nothing ticked since the last finished batch: no batch
SELECT pgque.next_batch('q04_a', 'c1') IS NULL AS no_batch;
SELECT (pgque.next_batch_info('q04_a', 'c1')).batch_id IS NULL AS no_batch_info;
SELECT test.batch('q04_a', 'c1') IS NULL AS nothing_opened;
SELECT pgque.send('q04_a', 'pgq', 'n1', 'a', 'b', 'c', 'd');
SELECT pgque.send('q04_a', 'pgq', 'n2');
SELECT pgque.force_tick('q04_a') AS tick_id \gset
SELECT batch_id AS b, prev_tick_id AS prev_tick FROM pgque.next_batch_info('q04_a', 'c1') \gset
SELECT batch_id IS NOT NULL AND cur_tick_id IS NOT NULL AND prev_tick_id IS NOT NULL
       AND cur_tick_time IS NOT NULL AND prev_tick_time IS NOT NULL
       AND cur_tick_event_seq IS NOT NULL AND prev_tick_event_seq IS NOT NULL AS all_not_null,
       prev_tick_id < cur_tick_id AS prev_before_cur,
       cur_tick_id = :tick_id AS ends_at_newest_tick,
       prev_tick_time <= cur_tick_time AS times_ordered,
       cur_tick_event_seq - prev_tick_event_seq AS seq_diff
  FROM pgque.next_batch_info('q04_a', 'c1');
-- the open batch is returned again, by both calls
SELECT pgque.next_batch('q04_a', 'c1') = :b AS same_batch_again;
SELECT ev_id, ev_type, ev_data, ev_retry, ev_extra1, ev_extra2, ev_extra3, ev_extra4,
       ev_txid IS NOT NULL AS has_txid, ev_time IS NOT NULL AS has_time
  FROM pgque.get_batch_events(:b);
SELECT queue_name, consumer_name, prev_tick_id = :prev_tick AS prev_ok, tick_id = :tick_id AS tick_ok,
       prev_tick_id < tick_id AS ordered, batch_start <= batch_end AS times_ordered
  FROM pgque.get_batch_info(:b);
SELECT pgque.finish_batch(:b);
SELECT test.batch('q04_a', 'c1') IS NULL AS finished;
-- finishing it again: 0 (its WARNING names the batch id, so hide it here)
SET client_min_messages = error;
SELECT pgque.finish_batch(:b) AS finish_again;
RESET client_min_messages;
-- an unknown batch: 0 with a WARNING
SELECT pgque.finish_batch(-4242);
-- nothing new after finishing
SELECT pgque.next_batch('q04_a', 'c1') IS NULL AS no_batch;
-- a finished batch is gone for every batch function
SELECT pg_temp.e(format('SELECT * FROM pgque.get_batch_events(%s)', :b));
SELECT pg_temp.e(format('SELECT * FROM pgque.get_batch_info(%s)', :b));
-- finish_batch ends a batch even when nothing was read of it: the consumer
-- moves past those events
SELECT pgque.send('q04_a', 'pgq', 'skipped');
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT pgque.finish_batch(pgque.next_batch('q04_a', 'c1'));
SELECT pgque.send('q04_a', 'pgq', 'next');
SELECT pgque.force_tick('q04_a') IS NOT NULL AS ticked;
SELECT test.drain('q04_a', 'c1') AS after_finish;

-- errors
SELECT test.err('SELECT * FROM pgque.get_batch_events(-7)');
SELECT test.err('SELECT * FROM pgque.get_batch_info(-7)');
SELECT test.err($$SELECT pgque.next_batch('q04_a', 'nobody')$$);
SELECT test.err($$SELECT * FROM pgque.next_batch_info('q04_a', 'nobody')$$);
SELECT test.err($$SELECT * FROM pgque.receive('q04_a', 'nobody')$$);
SELECT test.err($$SELECT pgque.next_batch('q04_nope', 'c1')$$);
SELECT test.err($$SELECT * FROM pgque.receive('q04_nope', 'c1')$$);

---------------------------------------------------------------------------
-- Merging: a consumer that is behind several ticks gets all their events in
-- one batch (c1 keeps up tick by tick, c2 reads only at the end).
---------------------------------------------------------------------------
SELECT pgque.create_queue('q04_m');
SELECT pgque.subscribe('q04_m', 'c1');
SELECT pgque.subscribe('q04_m', 'c2');
SELECT pgque.send('q04_m', 't', 'm1');
SELECT pgque.force_tick('q04_m') IS NOT NULL AS ticked;
SELECT test.drain('q04_m', 'c1');
SELECT pgque.send('q04_m', 't', 'm2');
SELECT pgque.send('q04_m', 't', 'm3');
SELECT pgque.force_tick('q04_m') IS NOT NULL AS ticked;
SELECT test.drain('q04_m', 'c1');
SELECT pgque.force_tick('q04_m') IS NOT NULL AS ticked;   -- an empty tick
SELECT pgque.send('q04_m', 't', 'm4');
SELECT pgque.force_tick('q04_m') IS NOT NULL AS ticked;
SELECT test.drain('q04_m', 'c1');
SELECT array_agg(msg_id ORDER BY msg_id) AS ids, count(DISTINCT batch_id) AS batches
  FROM pgque.receive('q04_m', 'c2', 100);
-- the merged batch spans from c2's subscription tick to the newest tick
SELECT i.prev_tick_id < i.tick_id AS ordered, i.tick_id = t.max AS to_newest
  FROM pgque.get_batch_info(test.batch('q04_m', 'c2')) i,
       (SELECT max(tick_id) FROM pgque.tick WHERE tick_queue = (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q04_m')) t;
SELECT pgque.ack(test.piece('q04_m', 'c2'));
SELECT test.batch('q04_m', 'c2') IS NULL AS finished;

SELECT dblink_disconnect('w1');
SELECT dblink_disconnect('w3');
SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['q04_a', 'q04_fan', 'q04_mix', 'q04_m']) q;
