-- 05_receive: the modern consumer API, receive() and ack().  A batch is
-- handed out in pieces of at most max rows after the acknowledged position,
-- each with an id of its own (the rows' batch_id); ack(piece) moves that
-- position to the end of that piece and finishes the batch only after its
-- last piece.  Nothing is skipped or repeated, whatever max is; unacked
-- pieces come again, and an ack never covers rows its piece did not hold.
--
-- Batch ids are never printed, only compared (captured with \gset).

SELECT pgque.create_queue('q05_a');
SELECT pgque.subscribe('q05_a', 'c');
SELECT pgque.subscribe('q05_a', 'big');   -- reads everything with one large max

---------------------------------------------------------------------------
-- Nothing ticked yet: receive returns nothing and opens no batch.
---------------------------------------------------------------------------
SELECT count(*) AS got FROM pgque.receive('q05_a', 'c', 10);
SELECT test.batch('q05_a', 'c') IS NULL AS no_batch;

---------------------------------------------------------------------------
-- 1000 events in one batch, received 7 at a time: every event exactly once,
-- in order, and all pieces, each with an id of its own, belong to one batch.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q05_a', 't', ARRAY(SELECT 'p' || i FROM generate_series(1, 1000) i))) AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
-- receive+ack in a loop, recording each piece (its number, batch id, ids)
CREATE TEMP TABLE pieces (n int, batch bigint, ids bigint[], payloads text[], open_batch bigint);
DO $$
DECLARE
    k   int := 0;
    ids bigint[];
    pls text[];
    b   bigint;
BEGIN
    LOOP
        SELECT array_agg(msg_id ORDER BY ord), array_agg(payload ORDER BY ord), min(batch_id)
          INTO ids, pls, b
          FROM pgque.receive('q05_a', 'c', 7) WITH ORDINALITY AS r(msg_id, batch_id, type, payload, retry_count,
                                                                 created_at, extra1, extra2, extra3, extra4, ord);
        EXIT WHEN b IS NULL;
        k := k + 1;
        INSERT INTO pieces VALUES (k, b, ids, pls, test.batch('q05_a', 'c'));
        IF pgque.ack(b) <> 1 THEN
            RAISE EXCEPTION 'ack of piece % returned 0', k;
        END IF;
        EXIT WHEN k > 1000;  -- safety net against an endless loop
    END LOOP;
END
$$;
SELECT count(*) AS pieces,
       count(DISTINCT batch) AS piece_ids,
       count(DISTINCT open_batch) AS batches,
       max(cardinality(ids)) AS biggest,
       min(cardinality(ids)) FILTER (WHERE n < (SELECT max(n) FROM pieces)) AS smallest_but_last,
       (SELECT cardinality(ids) FROM pieces ORDER BY n DESC LIMIT 1) AS last_piece
  FROM pieces;
-- concatenated in receive order, the ids are exactly 1..1000
SELECT (SELECT array_agg(id ORDER BY n, o) FROM pieces, unnest(ids) WITH ORDINALITY u(id, o))
       = ARRAY(SELECT generate_series(1, 1000)::bigint) AS all_in_order,
       (SELECT array_agg(p ORDER BY n, o) FROM pieces, unnest(payloads) WITH ORDINALITY u(p, o))
       = ARRAY(SELECT 'p' || i FROM generate_series(1, 1000) i) AS payloads_match;
SELECT test.batch('q05_a', 'c') IS NULL AS batch_finished;
SELECT count(*) AS after_drain FROM pgque.receive('q05_a', 'c', 7);
-- the same through test.drain, for the other consumer, in one piece
SELECT test.drain('q05_a', 'big', 100000) = ARRAY(SELECT generate_series(1, 1000)::bigint) AS big_all_in_order;

---------------------------------------------------------------------------
-- Events from two concurrent producer transactions with interleaved ids.
-- Delivery order is (transaction, id): all of the first transaction's events
-- (it got its xid first), then the second's -- each exactly once, even with
-- max 7 splitting the batch across the transaction boundary.
---------------------------------------------------------------------------
SELECT dblink_connect('p1', 'dbname=' || current_database());
SELECT dblink_connect('p2', 'dbname=' || current_database());
SELECT dblink_exec('p1', 'BEGIN');
SELECT dblink_exec('p2', 'BEGIN');
CREATE TEMP TABLE sent (who text, id bigint);
DO $$
BEGIN
    FOR i IN 1 .. 50 LOOP
        INSERT INTO sent SELECT 'p1', id
          FROM dblink('p1', format('SELECT pgque.send(%L, %L, %L)', 'q05_a', 't', 'p1-' || i)) AS t(id bigint);
        INSERT INTO sent SELECT 'p2', id
          FROM dblink('p2', format('SELECT pgque.send(%L, %L, %L)', 'q05_a', 't', 'p2-' || i)) AS t(id bigint);
    END LOOP;
END
$$;
-- the ids really interleave
SELECT who, count(*), min(id), max(id), bool_and(id % 2 = CASE who WHEN 'p1' THEN 1 ELSE 0 END) AS alternating
  FROM sent GROUP BY who ORDER BY who;
SELECT dblink_exec('p2', 'COMMIT');   -- the later transaction commits first
SELECT dblink_exec('p1', 'COMMIT');
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
CREATE TEMP TABLE got AS SELECT test.drain('q05_a', 'c', 7) AS ids;
SELECT cardinality(ids) AS received,
       cardinality(ids) = (SELECT count(DISTINCT x) FROM unnest(ids) x) AS no_duplicates,
       ids = ARRAY(SELECT id FROM sent WHERE who = 'p1' ORDER BY id)
             || ARRAY(SELECT id FROM sent WHERE who = 'p2' ORDER BY id) AS txid_then_id_order
  FROM got;
-- the large-max consumer gets the same sequence in one piece
SELECT test.drain('q05_a', 'big', 1000) = (SELECT ids FROM got) AS same_for_big;
SELECT dblink_disconnect('p1');
SELECT dblink_disconnect('p2');

---------------------------------------------------------------------------
-- ack semantics: after a partial receive ack(piece) returns 1 and the batch
-- stays open (same batch id) until its last piece is acked.  Acking a piece
-- again, or a piece of a finished batch, returns 0 and changes nothing.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q05_a', 't', ARRAY(SELECT 'a' || i FROM generate_series(1, 15) i))) AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
-- big is not interested in this part
SELECT cardinality(test.drain('q05_a', 'big')) AS big_drained;
SELECT array_agg(msg_id ORDER BY msg_id) AS piece1, min(batch_id) AS p1 FROM pgque.receive('q05_a', 'c', 6) \gset
SELECT test.batch('q05_a', 'c') AS b \gset
SELECT :'piece1' AS piece1, :p1 <> :b AS piece_id_is_not_batch_id;
SELECT pgque.ack(:p1) AS ack_partial;
SELECT pgque.ack(:p1) AS ack_again_nothing_new;
SELECT test.batch('q05_a', 'c') = :b AS still_open_same_id;
SELECT array_agg(msg_id ORDER BY msg_id) AS piece2, min(batch_id) AS p2, count(DISTINCT batch_id) AS ids
  FROM pgque.receive('q05_a', 'c', 6) \gset
SELECT :'piece2' AS piece2, :ids AS one_id, :p2 <> :p1 AS new_piece;
SELECT pgque.ack(:p2) AS ack_partial;
SELECT test.batch('q05_a', 'c') = :b AS still_open_same_id;
-- the last piece: fewer rows than max
SELECT array_agg(msg_id ORDER BY msg_id) AS piece3, min(batch_id) AS p3 FROM pgque.receive('q05_a', 'c', 6) \gset
SELECT :'piece3' AS piece3;
SELECT test.batch('q05_a', 'c') = :b AS open_until_acked;
SELECT pgque.ack(:p3) AS ack_last;
SELECT test.batch('q05_a', 'c') IS NULL AS finished;
SELECT pgque.ack(:p3) AS ack_finished_batch, pgque.ack(:p1) AS ack_old_piece;
-- ack takes piece ids: the id of a batch is refused with PQ027
SELECT pgque.send('q05_a', 't', 'z1') IS NOT NULL AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT count(*) AS got FROM pgque.receive('q05_a', 'c', 6);
SELECT regexp_replace(test.err(format('SELECT pgque.ack(%s)', test.batch('q05_a', 'c'))), ' \d+', ' N') AS ack_batch_id;
SELECT regexp_replace(test.err(format('SELECT pgque.nack(%s, 1)', test.batch('q05_a', 'c'))), ' \d+', ' N') AS nack_batch_id;
SELECT pgque.ack(test.piece('q05_a', 'c')) AS ack;
-- a batch whose last piece is exactly max rows is finished by its ack too
SELECT cardinality(pgque.send_batch('q05_a', 't', ARRAY['x1', 'x2', 'x3', 'x4'])) AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT array_agg(msg_id ORDER BY msg_id) AS ids, min(batch_id) AS p FROM pgque.receive('q05_a', 'c', 2) \gset
SELECT :'ids' AS first_two, pgque.ack(:p) AS ack;
SELECT array_agg(msg_id ORDER BY msg_id) AS last_two, min(batch_id) AS p FROM pgque.receive('q05_a', 'c', 2) \gset
SELECT :'last_two' AS last_two, pgque.ack(:p) AS ack;
SELECT test.batch('q05_a', 'c') IS NULL AS finished;
SELECT count(*) AS nothing_left FROM pgque.receive('q05_a', 'c', 2);
SELECT cardinality(test.drain('q05_a', 'big')) AS big_drained;
-- an open batch keeps its end: events ticked while it is being read come in
-- the next batch, not appended to the open one
SELECT cardinality(pgque.send_batch('q05_a', 't', ARRAY['y1', 'y2', 'y3'])) AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT array_agg(msg_id ORDER BY msg_id) AS ids, min(batch_id) AS p FROM pgque.receive('q05_a', 'c', 2) \gset
SELECT test.batch('q05_a', 'c') AS b \gset
SELECT :'ids' AS first_two, pgque.ack(:p) AS ack;
SELECT pgque.send('q05_a', 't', 'y4');
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT array_agg(msg_id ORDER BY msg_id) AS rest_of_batch, test.batch('q05_a', 'c') = :b AS same_batch
  FROM pgque.receive('q05_a', 'c', 10);
SELECT pgque.ack(test.piece('q05_a', 'c')) AS ack;
SELECT array_agg(msg_id ORDER BY msg_id) AS next_batch, test.batch('q05_a', 'c') <> :b AS new_batch
  FROM pgque.receive('q05_a', 'c', 10);
SELECT pgque.ack(test.piece('q05_a', 'c')) AS ack;
SELECT test.drain('q05_a', 'big') AS big_drained;
-- unknown batch: 0; NULL: PQ006
SELECT pgque.ack(-1) AS ack_unknown;
SELECT test.err('SELECT pgque.ack(NULL)');

---------------------------------------------------------------------------
-- Redelivery inside a batch: receive without ack, receive again -> the same
-- rows again (a new piece), not the next ones.  After an ack the next piece
-- follows.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q05_a', 't', ARRAY(SELECT 'r' || i FROM generate_series(1, 5) i))) AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT test.ids('q05_a', 'c', 2) AS first;
SELECT test.ids('q05_a', 'c', 2) AS again_same;
SELECT test.ids('q05_a', 'c', 3) AS again_larger;   -- a larger max re-reads from the acked position
SELECT pgque.ack(test.piece('q05_a', 'c')) AS ack;  -- acks all three handed out
SELECT test.ids('q05_a', 'c', 3) AS next_piece;
SELECT test.ids('q05_a', 'c', 3) AS same_again;
SELECT pgque.ack(test.piece('q05_a', 'c')) AS ack;
SELECT test.batch('q05_a', 'c') IS NULL AS finished;
SELECT cardinality(test.drain('q05_a', 'big')) AS big_drained;

---------------------------------------------------------------------------
-- Two readers of one consumer (say two processes, or an operator's receive
-- beside the service): an ack finishes only what its own piece held.  A
-- gets 5 of 9, B the same 5 and 3 more (none was acked); A's ack leaves B's
-- extra three unacknowledged: they come again, nothing is lost.  B's ack
-- of the longer piece covers A's; A's late ack then finds nothing new.
---------------------------------------------------------------------------
SELECT cardinality(pgque.send_batch('q05_a', 't', ARRAY(SELECT 'm' || i FROM generate_series(1, 9) i))) AS sent;
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT array_agg(payload ORDER BY msg_id) AS a_got, min(batch_id) AS pa FROM pgque.receive('q05_a', 'c', 5) \gset
SELECT array_agg(payload ORDER BY msg_id) AS b_got, min(batch_id) AS pb FROM pgque.receive('q05_a', 'c', 8) \gset
SELECT :'a_got' AS a_got, :'b_got' AS b_got;
SELECT pgque.ack(:pa) AS a_ack;                       -- B crashes here, before its ack
SELECT array_agg(payload ORDER BY msg_id) AS after_a_ack, min(batch_id) AS pc FROM pgque.receive('q05_a', 'c', 8) \gset
SELECT :'after_a_ack' AS after_a_ack;                 -- m6..m9: B's unacked share, and the rest
SELECT regexp_replace(test.err(format('SELECT pgque.nack(%s, %s)', :pa, (SELECT min(msg_id) + 5 FROM pgque.peek('q05_a', 'c')))),
                      ' \d+', ' N', 'g') AS a_cannot_nack_what_it_did_not_get;
SELECT pgque.ack(:pb) AS b_late_ack, pgque.ack(:pa) AS a_again;  -- B's piece ends at m8: acked up to there
SELECT array_agg(payload ORDER BY msg_id) AS left_over FROM pgque.peek('q05_a', 'c');
SELECT pgque.ack(:pc) AS c_ack, test.batch('q05_a', 'c') IS NULL AS finished;
SELECT pgque.ack(:pb) AS b_after_finish;
SELECT cardinality(test.drain('q05_a', 'big')) AS big_drained;

---------------------------------------------------------------------------
-- Invalid max: 0, negative and NULL are rejected with PQ006 (before
-- anything is opened).
---------------------------------------------------------------------------
SELECT test.err($$SELECT * FROM pgque.receive('q05_a', 'c', 0)$$);
SELECT test.err($$SELECT * FROM pgque.receive('q05_a', 'c', -5)$$);
SELECT test.err($$SELECT * FROM pgque.receive('q05_a', 'c', NULL)$$);
-- and the checks come first, even for an unknown queue
SELECT test.err($$SELECT * FROM pgque.receive('q05_nope', 'c', 0)$$);

---------------------------------------------------------------------------
-- An empty batch (its only events were rolled back) is finished on the
-- way: receive returns nothing, no batch stays open, and the next real event
-- is received.
---------------------------------------------------------------------------
SELECT last_tick AS tick_before FROM pgque.get_consumer_info('q05_a', 'c') \gset
BEGIN;
SELECT pgque.send('q05_a', 't', 'never');
ROLLBACK;
SELECT pgque.force_tick('q05_a') AS empty_tick \gset
SELECT count(*) AS got FROM pgque.receive('q05_a', 'c', 10);
SELECT current_batch IS NULL AS no_open_batch, last_tick = :empty_tick AS moved_past_empty_tick,
       last_tick > :tick_before AS moved
  FROM pgque.get_consumer_info('q05_a', 'c');
SELECT pgque.send('q05_a', 't', 'real');
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT msg_id, payload FROM pgque.receive('q05_a', 'c', 10);
SELECT pgque.ack(test.piece('q05_a', 'c'));
-- two empty ticks in a row, then a real one (the consumer read after each)
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT count(*) AS got FROM pgque.receive('q05_a', 'c', 10);
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT count(*) AS got FROM pgque.receive('q05_a', 'c', 10);
SELECT pgque.send('q05_a', 't', 'real2');
SELECT pgque.force_tick('q05_a') IS NOT NULL AS ticked;
SELECT test.drain('q05_a', 'c') AS after_empty;
-- 'big' read none of these steps: it gets the two real events in one go
SELECT test.drain('q05_a', 'big') AS big_after_empty;

-- get_batch_events returns the whole batch, whatever receive handed out
-- and ack acknowledged of it
SELECT pgque.create_queue('q05_ge');
SELECT pgque.subscribe('q05_ge', 'c');
SELECT cardinality(pgque.send_batch('q05_ge', 't', ARRAY['a', 'b', 'c'])) AS sent;
SELECT pgque.force_tick('q05_ge') IS NOT NULL AS ticked;
SELECT array_agg(payload) AS received FROM pgque.receive('q05_ge', 'c', 2);
SELECT pgque.ack(test.piece('q05_ge', 'c')) AS ack;
SELECT array_agg(ev_data ORDER BY ev_id) AS whole_batch FROM pgque.get_batch_events(test.batch('q05_ge', 'c'));
SELECT pgque.drop_queue('q05_ge', true);

---------------------------------------------------------------------------
-- Reading a piece costs the piece, not the table: a batch's first piece
-- starts its index scan at the batch's txid range, not at the table's first
-- row (a row comparison from (0, 0) used to walk every older batch's rows).
-- The test counts the heap fetches of the event table in the statistics,
-- flushed on demand around the receive.
---------------------------------------------------------------------------
SET stats_fetch_consistency = none;
SELECT pgque.create_queue('q05_scan');
SELECT pgque.subscribe('q05_scan', 'c');
SELECT cardinality(pgque.send_batch('q05_scan', 't', array_agg(g::text))) AS sent
  FROM generate_series(1, 5000) g;
SELECT pgque.force_tick('q05_scan') IS NOT NULL AS ticked;
SELECT cardinality(test.drain('q05_scan', 'c')) AS first_batch;
SELECT pgque.send('q05_scan', 't', 'next') IS NOT NULL AS sent;
SELECT pgque.force_tick('q05_scan') IS NOT NULL AS ticked;
SELECT pgque._event_table(queue_id, 0)::regclass AS scan_table FROM pgque.queue WHERE queue_name = 'q05_scan' \gset
SELECT pg_stat_force_next_flush();
SELECT idx_tup_fetch AS fetched_before FROM pg_stat_user_tables WHERE relid = :'scan_table'::regclass \gset
SELECT payload FROM pgque.receive('q05_scan', 'c', 10);
SELECT pg_stat_force_next_flush();
SELECT idx_tup_fetch - :fetched_before < 10 AS piece_sized_scan
  FROM pg_stat_user_tables WHERE relid = :'scan_table'::regclass;
RESET stats_fetch_consistency;
SELECT pgque.drop_queue('q05_scan', true);

---------------------------------------------------------------------------
-- receive_query(): the same pieces as receive(), read by the client with
-- the query it returns.  test.piece() does what a client does.
---------------------------------------------------------------------------
CREATE FUNCTION test.piece(q text, c text, n int) RETURNS text[]
LANGUAGE plpgsql SET enable_seqscan = off SET enable_bitmapscan = off SET enable_sort = off AS $$
DECLARE
    r record;
    payloads text[];
BEGIN
    SELECT * INTO r FROM pgque.receive_query(q, c, n);
    IF NOT r.direct THEN
        RAISE EXCEPTION 'receive_query: not direct';
    ELSIF r.batch_id IS NULL THEN
        RETURN NULL;
    END IF;
    EXECUTE 'SELECT array_agg(payload) FROM (' || r.query || ') m' INTO payloads
      USING r.ctx::pgque._batch_ctx, r.batch_id, n;
    RETURN payloads;
END
$$;
SELECT pgque.create_queue('q05_d');
SELECT pgque.subscribe('q05_d', 'c'), pgque.subscribe('q05_d', 'srf');
SELECT test.piece('q05_d', 'c', 3) AS nothing_ticked;
BEGIN;
SELECT cardinality(pgque.send_batch('q05_d', 't', ARRAY['1', '2', '3', '4', '5'])) AS sent;
COMMIT;
SELECT cardinality(pgque.send_batch('q05_d', 't', ARRAY['6', '7'])) AS sent;
SELECT pgque.force_tick('q05_d') IS NOT NULL AS ticked;
SELECT test.piece('q05_d', 'c', 3) AS piece;
-- not acked: the same piece again, through either function
SELECT test.piece('q05_d', 'c', 3) AS again;
SELECT array_agg(payload) AS again_receive FROM pgque.receive('q05_d', 'c', 3);
SELECT pgque.ack(test.piece('q05_d', 'c')) AS ack;
SELECT test.piece('q05_d', 'c', 3) AS piece;
SELECT pgque.ack(test.piece('q05_d', 'c')) AS ack;
-- exactly the rest: the batch ends with this piece, the ack finishes it
SELECT test.piece('q05_d', 'c', 1) AS last;
SELECT pgque.ack(test.piece('q05_d', 'c')) AS ack;
SELECT current_batch IS NULL AS finished, pending_events FROM pgque.get_consumer_info('q05_d', 'c');
SELECT test.piece('q05_d', 'c', 3) AS nothing_left;
-- receive() cut the same batch the same way
SELECT (SELECT array_agg(payload) FROM pgque.receive('q05_d', 'srf', 3)) AS srf_piece,
       pgque.ack(test.piece('q05_d', 'srf')) AS ack;
SELECT (SELECT array_agg(payload) FROM pgque.receive('q05_d', 'srf', 3)) AS srf_piece,
       pgque.ack(test.piece('q05_d', 'srf')) AS ack;
SELECT (SELECT array_agg(payload) FROM pgque.receive('q05_d', 'srf', 3)) AS srf_piece,
       pgque.ack(test.piece('q05_d', 'srf')) AS ack;
-- a straggler: a transaction running at one tick and committed by the next
-- belongs to the next batch, read through the stragglers' part of the query
SELECT dblink_connect('w05', 'dbname=' || current_database());
SELECT dblink_exec('w05', 'BEGIN');
SELECT count(*) AS sent FROM dblink('w05', $$SELECT pgque.send('q05_d', 't', 'straggler')$$) AS t(id bigint);
SELECT pgque.send('q05_d', 't', 'early') IS NOT NULL AS sent;
SELECT pgque.force_tick('q05_d') IS NOT NULL AS ticked;
SELECT test.piece('q05_d', 'c', 10) AS early;
SELECT pgque.ack(test.piece('q05_d', 'c')) AS ack;
SELECT dblink_exec('w05', 'COMMIT');
SELECT dblink_disconnect('w05');
SELECT pgque.send('q05_d', 't', 'late') IS NOT NULL AS sent;
SELECT pgque.force_tick('q05_d') IS NOT NULL AS ticked;
SELECT test.piece('q05_d', 'c', 1) AS with_straggler_1;
SELECT pgque.ack(test.piece('q05_d', 'c')) AS ack;
SELECT test.piece('q05_d', 'c', 1) AS with_straggler_2;
SELECT pgque.ack(test.piece('q05_d', 'c')) AS ack;
SELECT test.piece('q05_d', 'c', 1) AS with_straggler_3;
SELECT test.err($$SELECT * FROM pgque.receive_query('q05_d', 'c', 0)$$);
SELECT test.err($$SELECT * FROM pgque.receive_query('q05_d', 'nobody', 10)$$);
SELECT pgque.drop_queue('q05_d', true);

---------------------------------------------------------------------------
-- Unknown consumer and queue.
---------------------------------------------------------------------------
SELECT test.err($$SELECT * FROM pgque.receive('q05_a', 'nobody', 10)$$);
SELECT test.err($$SELECT * FROM pgque.receive('q05_nope', 'c', 10)$$);
-- consumer calls need READ COMMITTED: they read the newest position after
-- locking the consumer, which an older snapshot would not see (PQ009)
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT test.err($$SELECT * FROM pgque.receive('q05_a', 'c', 10)$$);
ROLLBACK;
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT test.err($$SELECT pgque.ack(1)$$);
ROLLBACK;

SELECT pgque.drop_queue('q05_a', true);
