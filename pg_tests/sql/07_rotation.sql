-- 07_rotation: event-table rotation with a lagging consumer.
--
-- A queue has 3 event tables; a switch (step 1) moves writers to the next
-- table (generation k -> k+1, table (k+1) % 3, truncated first); step 2, in
-- a later transaction, records the boundary "post" (an xid drawn after the
-- switch).  The guard lets a queue switch again only after step 2 and when
-- every consumer has moved past post, so a consumer that stops pins rotation
-- (blocking_rotation) and never loses events; once it catches up rotation
-- continues and old tables are truncated.  Also: producer transactions open
-- across a switch, a table locked by another session (LOCK NOWAIT), the
-- repair of a switch interrupted after moving the generation sequence, PQ009.
--
-- The rotation period is 1 ms; a round sleeps 10 ms (in its own
-- transaction: now() is the transaction start) before calling maint(), so
-- the period has always passed and only the guard decides.  A round ends
-- with step 2 in a transaction of its own, so that the next round can switch.

SELECT pgque.create_queue('q07_r');
SELECT pgque.set_queue_config('q07_r', 'rotation_period', '1 millisecond');
SELECT pgque.subscribe('q07_r', 'fast');
SELECT pgque.subscribe('q07_r', 'slow');
SELECT queue_id AS qid FROM pgque.queue WHERE queue_name = 'q07_r' \gset

-- Every id sent (committed) and every id each consumer received.
CREATE TEMP TABLE sent (id bigint);
CREATE TEMP TABLE got (c text, id bigint, n serial);
-- One line per round.
CREATE TEMP TABLE rounds (
    r             int,
    sent          bigint[],
    fast_got      bigint[],
    slow_got      bigint[],
    fast_blocking boolean,   -- blocking_rotation just before maint()
    slow_blocking boolean,
    gen_before    bigint,
    gen_after     bigint,
    cur_table     int,       -- get_queue_info().queue_cur_table after maint()
    counts        bigint[]   -- rows in event tables 0, 1, 2 after maint()
);

-- pg_temp.counts(qid): rows in each of the queue's event tables.
CREATE FUNCTION pg_temp.counts(qid int) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    res bigint[] := '{}';
    n   bigint;
BEGIN
    FOR i IN 0 .. 2 LOOP
        EXECUTE format('SELECT count(*) FROM pgque.event_%s_%s', qid, i) INTO n;
        res := res || n;
    END LOOP;
    RETURN res;
END
$$;

-- pg_temp.round(r, drain_slow): one round, every step in its own transaction:
-- send 3 events; tick; 'fast' drains (and 'slow' if drain_slow); sleep 10 ms;
-- record blocking_rotation; maint(); step 2; record the generation and tables.
CREATE PROCEDURE pg_temp.round(r int, drain_slow boolean) LANGUAGE plpgsql AS $$
DECLARE
    q    text := 'q07_r';
    qid  int := (SELECT queue_id FROM pgque.queue WHERE queue_name = 'q07_r');
    ids  bigint[] := '{}';
    fg   bigint[];
    sg   bigint[];
    fb   boolean;
    sb   boolean;
    g0   bigint;
BEGIN
    FOR i IN 1 .. 3 LOOP
        ids := ids || pgque.send(q, 't', format('r%s-%s', r, i));
        COMMIT;
    END LOOP;
    INSERT INTO sent SELECT unnest(ids);
    COMMIT;
    PERFORM pgque.force_tick(q);
    COMMIT;
    fg := test.drain(q, 'fast');
    INSERT INTO got (c, id) SELECT 'fast', unnest(fg);
    COMMIT;
    IF drain_slow THEN
        sg := test.drain(q, 'slow');
        INSERT INTO got (c, id) SELECT 'slow', unnest(sg);
        COMMIT;
    END IF;
    PERFORM pg_sleep(0.01);
    COMMIT;
    SELECT bool_or(blocking_rotation) FILTER (WHERE consumer_name = 'fast'),
           bool_or(blocking_rotation) FILTER (WHERE consumer_name = 'slow')
      INTO fb, sb FROM pgque.get_consumer_info(q);
    SELECT queue_gen INTO g0 FROM pgque.queue WHERE queue_name = q;
    COMMIT;
    PERFORM pgque.maint();
    COMMIT;
    PERFORM pgque.maint_rotate_tables_step2();
    COMMIT;
    INSERT INTO rounds
    SELECT r, ids, fg, sg, fb, sb, g0, (SELECT queue_gen FROM pgque.queue WHERE queue_name = q),
           (SELECT queue_cur_table FROM pgque.get_queue_info(q)), pg_temp.counts(qid);
    COMMIT;
END
$$;

---------------------------------------------------------------------------
-- Phase A: 'slow' does not consume.  The first switch is allowed (slow sits
-- at the queue's first tick, which is not before the initial boundary), then
-- maint() does not switch again: slow blocks rotation, and the table with
-- the events slow still needs (table 0) is not truncated.
---------------------------------------------------------------------------
CALL pg_temp.round(1, false);
CALL pg_temp.round(2, false);
CALL pg_temp.round(3, false);
CALL pg_temp.round(4, false);
SELECT r, sent, fast_got, fast_got = sent AS fast_ok, fast_blocking, slow_blocking,
       gen_before, gen_after, cur_table, counts
  FROM rounds ORDER BY r;
SELECT consumer_name, blocking_rotation, pending_events FROM pgque.get_consumer_info('q07_r') ORDER BY 1;

---------------------------------------------------------------------------
-- Phase B: 'slow' catches up: every event exactly once, in order, in one
-- batch spanning both tables.
---------------------------------------------------------------------------
SELECT count(DISTINCT batch_id) AS batches, count(*) AS events FROM pgque.receive('q07_r', 'slow', 1000);
INSERT INTO got (c, id) SELECT 'slow', unnest(test.drain('q07_r', 'slow'));
SELECT array_agg(id ORDER BY n) = (SELECT array_agg(id ORDER BY id) FROM sent) AS slow_got_all_in_order,
       count(*) AS received
  FROM got WHERE c = 'slow';
SELECT consumer_name, blocking_rotation, pending_events FROM pgque.get_consumer_info('q07_r') ORDER BY 1;

---------------------------------------------------------------------------
-- Phase C: both consume every round: rotation goes on, one switch per
-- round, through more than two full cycles of the 3 tables.  After each
-- switch the new current table is empty (truncated), and at most the two
-- previous rounds' events are kept.
---------------------------------------------------------------------------
CALL pg_temp.round(5, true);
CALL pg_temp.round(6, true);
CALL pg_temp.round(7, true);
CALL pg_temp.round(8, true);
CALL pg_temp.round(9, true);
CALL pg_temp.round(10, true);
CALL pg_temp.round(11, true);
CALL pg_temp.round(12, true);
SELECT r, fast_got = sent AS fast_ok, slow_got = sent AS slow_ok, fast_blocking, slow_blocking,
       gen_before, gen_after, cur_table, counts
  FROM rounds WHERE r >= 5 ORDER BY r;
SELECT count(*) AS switches_in_phase_c,
       count(DISTINCT cur_table) AS tables_used
  FROM rounds WHERE r >= 5 AND gen_after = gen_before + 1;

---------------------------------------------------------------------------
-- Phase D: a producer transaction (second session) sends before a switch
-- and commits after it.  The switch happens (the writer got its xid after
-- step 2 of the previous switch); the next one waits for it (it is still
-- running); after its commit its event is delivered to each consumer exactly
-- once, after the events committed before it (in round 15's batch).
---------------------------------------------------------------------------
SELECT dblink_connect('w', 'dbname=' || current_database());
SELECT dblink_exec('w', 'BEGIN');
SELECT id AS long_id FROM dblink('w', $$SELECT pgque.send('q07_r', 't', 'long')$$) AS t(id bigint) \gset
SELECT :long_id AS long_id;
SELECT queue_gen AS long_gen FROM pgque.queue WHERE queue_id = :qid \gset
CALL pg_temp.round(13, true);
CALL pg_temp.round(14, true);
SELECT dblink_exec('w', 'COMMIT');
INSERT INTO sent VALUES (:long_id);
CALL pg_temp.round(15, true);
CALL pg_temp.round(16, true);
SELECT r, sent, fast_got, slow_got,
       gen_after - gen_before AS switched, gen_before = :long_gen AS from_long_gen
  FROM rounds WHERE r >= 13 ORDER BY r;
SELECT c, count(*) AS long_received FROM got WHERE id = :long_id GROUP BY c ORDER BY c;

---------------------------------------------------------------------------
-- Phase D2: the same, with nothing committed between the writer getting its
-- xid and the switch (the writer holds the newest xid, so it is not listed
-- in any snapshot taken before it; a boundary read from a snapshot there
-- would be <= its xid).  Step by step: step 1 switches while the writer is
-- open; step 1 again does nothing until step 2 has run; after step 2 it still
-- waits for the writer; once it commits its event is delivered exactly once.
---------------------------------------------------------------------------
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
INSERT INTO got (c, id) SELECT c, unnest(test.drain('q07_r', c)) FROM unnest(ARRAY['fast', 'slow']) c;
SELECT pg_sleep(0.01);
SELECT dblink_exec('w', 'BEGIN');
SELECT id AS edge_id FROM dblink('w', $$SELECT pgque.send('q07_r', 't', 'edge')$$) AS t(id bigint) \gset
SELECT pgque.maint_rotate_tables_step1('q07_r') AS switched;
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
CREATE TEMP TABLE d2 AS SELECT c, test.drain('q07_r', c) AS ids FROM unnest(ARRAY['fast', 'slow']) c;
SELECT c, ids AS while_open FROM d2 ORDER BY c;
INSERT INTO got (c, id) SELECT c, unnest(ids) FROM d2;
SELECT pg_sleep(0.01);
-- step 2 of the switch has not run: no new switch
SELECT pgque.maint_rotate_tables_step1('q07_r') AS switched_before_step2;
SELECT pgque.maint_rotate_tables_step2() AS step2;
SELECT pgque.maint_rotate_tables_step2() AS step2_again;
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
INSERT INTO got (c, id) SELECT c, unnest(test.drain('q07_r', c)) FROM unnest(ARRAY['fast', 'slow']) c;
SELECT pg_sleep(0.01);
-- the writer of the old generation is still running: no switch yet
SELECT pgque.maint_rotate_tables_step1('q07_r') AS switched_while_writer_open;
SELECT dblink_exec('w', 'COMMIT');
INSERT INTO sent VALUES (:edge_id);
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
TRUNCATE d2;
INSERT INTO d2 SELECT c, test.drain('q07_r', c) FROM unnest(ARRAY['fast', 'slow']) c;
SELECT c, ids = ARRAY[:edge_id]::bigint[] AS got_edge FROM d2 ORDER BY c;
INSERT INTO got (c, id) SELECT c, unnest(ids) FROM d2;
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
SELECT c, test.drain('q07_r', c) AS nothing_more FROM unnest(ARRAY['fast', 'slow']) c;
SELECT pg_sleep(0.01);
SELECT pgque.maint_rotate_tables_step1('q07_r') AS switched_after_commit;
SELECT pgque.maint_rotate_tables_step2() AS step2;

---------------------------------------------------------------------------
-- Phase E: LOCK NOWAIT.  With the table to be reused locked by another
-- session, step 1 skips quietly (0) and consuming works on; once the lock is
-- gone it switches.
---------------------------------------------------------------------------
SELECT pgque.send('q07_r', 't', 'e1') AS e1 \gset
INSERT INTO sent VALUES (:e1);
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
INSERT INTO got (c, id) SELECT c, unnest(test.drain('q07_r', c)) FROM unnest(ARRAY['fast', 'slow']) c;
SELECT queue_gen AS g, (queue_gen + 1) % 3 AS next_table FROM pgque.queue WHERE queue_id = :qid \gset
SELECT dblink_exec('w', 'BEGIN');
SELECT dblink_exec('w', format('LOCK TABLE pgque.event_%s_%s IN ACCESS SHARE MODE', :qid, :next_table));
SELECT pg_sleep(0.01);
SELECT pgque.maint_rotate_tables_step1('q07_r') AS switched_while_locked;
SELECT queue_gen = :g AS gen_unchanged FROM pgque.queue WHERE queue_id = :qid;
SELECT pgque.send('q07_r', 't', 'e2') AS e2 \gset
INSERT INTO sent VALUES (:e2);
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
SELECT c, test.drain('q07_r', c) = ARRAY[:e2]::bigint[] AS got_e2 FROM unnest(ARRAY['fast', 'slow']) c;
INSERT INTO got (c, id) VALUES ('fast', :e2), ('slow', :e2);
SELECT dblink_exec('w', 'ROLLBACK');
SELECT pgque.maint_rotate_tables_step1('q07_r') AS switched_after_unlock;
SELECT queue_gen = :g + 1 AS gen_moved, queue_gen % 3 = :next_table AS on_next_table
  FROM pgque.queue WHERE queue_id = :qid;
SELECT queue_cur_table = :next_table AS info_cur_table FROM pgque.get_queue_info('q07_r');
-- step 2 refuses to run in a transaction that already has an xid (it could
-- predate the switch); in a fresh one it records the boundary
BEGIN;
SELECT pgque.send('q07_r', 't', 'rolled back') IS NOT NULL AS wrote;
SELECT pgque.maint_rotate_tables_step2() AS step2_after_write;
ROLLBACK;
SELECT pgque.maint_rotate_tables_step2() AS step2;

---------------------------------------------------------------------------
-- Phase F: a switch interrupted after it moved the generation sequence (the
-- sequence is not transactional, the rest of the switch rolled back) is
-- simulated with setval.  New writers follow the sequence, into a table that
-- was not truncated and still holds old, already consumed events; a writer
-- that began before keeps its old table.  Batches deliver the new events
-- exactly once and none of the old ones; maint() adopts the generation, and
-- rotation and delivery go on.
---------------------------------------------------------------------------
-- two switching rounds: the table after the current one holds the events
-- of the first; then both consumers move past the last switch (the state
-- in which a switch may begin)
CALL pg_temp.round(17, true);
CALL pg_temp.round(18, true);
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
INSERT INTO got (c, id) SELECT c, unnest(test.drain('q07_r', c)) FROM unnest(ARRAY['fast', 'slow']) c;
SELECT queue_gen AS g, queue_gen % 3 AS old_table, (queue_gen + 1) % 3 AS seq_table
  FROM pgque.queue WHERE queue_id = :qid \gset
SELECT format('pgque.event_%s_%s', :qid, :seq_table) AS seq_tbl, format('pgque.event_%s_%s', :qid, :old_table) AS old_tbl \gset
SELECT count(*) AS old_rows FROM :seq_tbl \gset
SELECT :old_rows > 0 AS table_holds_old_rows;
-- a writer in the current generation, still open during what follows
SELECT dblink_exec('w', 'BEGIN');
SELECT id AS w_id FROM dblink('w', $$SELECT pgque.send('q07_r', 't', 'w-old-gen')$$) AS t(id bigint) \gset
SELECT setval(format('pgque.event_%s_gen', :qid)::regclass, :g + 1, true) = :g + 1 AS seq_moved;
SELECT queue_cur_table = :old_table AS info_still_old_table FROM pgque.get_queue_info('q07_r');
SELECT array_agg(pgque.send('q07_r', 't', 'f' || i)) AS f_ids FROM generate_series(1, 3) i \gset
INSERT INTO sent SELECT unnest(:'f_ids'::bigint[]);
SELECT count(*) - :old_rows AS new_rows_in_seq_table FROM :seq_tbl;
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
SELECT c, test.drain('q07_r', c) = :'f_ids'::bigint[] AS got_exactly_new FROM unnest(ARRAY['fast', 'slow']) c;
INSERT INTO got (c, id) SELECT c, unnest(:'f_ids'::bigint[]) FROM unnest(ARRAY['fast', 'slow']) c;
SELECT pgque.maint() >= 1 AS repaired;
SELECT queue_gen = :g + 1 AS gen_adopted FROM pgque.queue WHERE queue_id = :qid;
SELECT queue_cur_table = :seq_table AS info_matches_sequence FROM pgque.get_queue_info('q07_r');
SELECT pgque.maint_rotate_tables_step2() AS step2;
-- the old-generation writer commits after the repair: delivered once
SELECT dblink_exec('w', 'COMMIT');
INSERT INTO sent VALUES (:w_id);
SELECT count(*) AS w_in_old_table FROM :old_tbl WHERE ev_id = :w_id;
SELECT pgque.force_tick('q07_r') IS NOT NULL AS ticked;
SELECT c, test.drain('q07_r', c) = ARRAY[:w_id]::bigint[] AS got_w FROM unnest(ARRAY['fast', 'slow']) c;
INSERT INTO got (c, id) VALUES ('fast', :w_id), ('slow', :w_id);
-- rotation continues from the adopted generation
CALL pg_temp.round(19, true);
CALL pg_temp.round(20, true);
CALL pg_temp.round(21, true);
CALL pg_temp.round(22, true);
SELECT r, fast_got = sent AS fast_ok, slow_got = sent AS slow_ok,
       CASE WHEN r >= 19 THEN gen_before - :g END AS gen_before_rel,
       gen_after - gen_before AS switched, cur_table = gen_after % 3 AS cur_table_ok
  FROM rounds WHERE r >= 17 ORDER BY r;

---------------------------------------------------------------------------
-- Over the whole file: each consumer received every committed event exactly
-- once.
---------------------------------------------------------------------------
SELECT c, count(*) AS received, count(*) = count(DISTINCT id) AS no_duplicates,
       array_agg(id ORDER BY id) = (SELECT array_agg(id ORDER BY id) FROM sent) AS all_sent
  FROM got GROUP BY c ORDER BY c;
SELECT count(*) AS total_switches FROM rounds WHERE gen_after > gen_before;

---------------------------------------------------------------------------
-- maint() and maint_rotate_tables_step1() need READ COMMITTED (PQ009);
-- unknown queue PQ001.
---------------------------------------------------------------------------
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.err('SELECT pgque.maint()');
SELECT test.err($$SELECT pgque.maint_rotate_tables_step1('q07_r')$$);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT test.err($$SELECT pgque.maint_rotate_tables_step1('q07_r')$$);
ROLLBACK;
SELECT test.err($$SELECT pgque.maint_rotate_tables_step1('q07_nope')$$);

SELECT dblink_disconnect('w');
SELECT pgque.drop_queue('q07_r', true);

---------------------------------------------------------------------------
-- A crashed switch on a queue whose next switch is not due (created just
-- now, rotation_period 2 hours) is found by maint()'s turn over a 64th of
-- the queues at a time: adopted within 64 calls, and delivery goes on.
---------------------------------------------------------------------------
SELECT pgque.create_queue('q07_c');
SELECT pgque.subscribe('q07_c', 'c');
SELECT queue_id AS cid FROM pgque.queue WHERE queue_name = 'q07_c' \gset
SELECT setval(format('pgque.event_%s_gen', :cid)::regclass, 1, true) = 1 AS seq_moved;
SELECT pgque.send('q07_c', 't', 'after-crash') IS NOT NULL AS sent;
DO $$
BEGIN
    FOR i IN 1 .. 64 LOOP
        PERFORM pgque.maint();
        COMMIT;
    END LOOP;
END
$$;
SELECT queue_gen AS c_gen_adopted FROM pgque.queue WHERE queue_name = 'q07_c';
SELECT pgque.force_tick('q07_c') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS c_got FROM pgque.receive('q07_c', 'c', 10);
SELECT pgque.drop_queue('q07_c', true);
