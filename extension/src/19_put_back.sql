-- Putting rows back after a TRUNCATE.  The tick and consumer-state logs
-- (maint_rotate_logs, 10_maint.sql), the delayed store (maint_rotate_delayed,
-- 13_delayed.sql) and the dedup store (maint_rotate_dedup, 14_dedup.sql) are
-- recycled by emptying their oldest partition and inserting back the rows
-- that must survive, noted beforehand.  One queue never stops the others
-- here either: when some queue's rows cannot go back in (a trigger or a
-- constraint refuses them), the whole recycling is undone, so that nothing
-- of any queue is lost, and each such queue is recorded under the store's
-- step ('logs', 'delayed_store' or 'dedup'); maint() goes on with its other
-- steps, and the store tries again at the next call.  A partition holds
-- every queue's rows, so there is no recycling it for some queues only.
-- This file comes after the stores, whose row types its functions take.

-- _put_back(step, part, queue_id, ticks, states, events, dones, pos, keys):
-- insert the rows noted for step's store into partition part: all of them,
-- or (queue_id not NULL) those of one queue.  'logs': the newest ticks and
-- consumer states (moved to part); 'delayed_store': delayed events, their
-- done rows and (all only) the mover's position; 'dedup': keys.  The
-- delayed and dedup rows were noted in part and keep it.
CREATE FUNCTION pgque._put_back(step text, part int, queue_id int,
                                ticks pgque.tick[], states pgque.sub_state[],
                                events pgque.delayed[], dones pgque.delayed_done[], pos pgque.delayed_pos,
                                keys pgque.dedup[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    CASE step
    WHEN 'logs' THEN
        INSERT INTO pgque.tick (tick_part, tick_queue, tick_id, tick_time, tick_snapshot, tick_event_seq,
                                tick_pending)
        SELECT part, t.tick_queue, t.tick_id, t.tick_time, t.tick_snapshot, t.tick_event_seq, t.tick_pending
          FROM unnest(ticks) t
         WHERE _put_back.queue_id IS NULL OR t.tick_queue = _put_back.queue_id;
        INSERT INTO pgque.sub_state
        SELECT part, x.ss_sub, x.ss_seq, x.sub_last_tick, x.sub_last_time, x.sub_last_snapshot, x.sub_last_seq,
               x.sub_batch, x.sub_next_tick, x.sub_next_time, x.sub_next_snapshot, x.sub_next_seq,
               x.sub_ack_txid, x.sub_ack_id, x.sub_sent_txid, x.sub_sent_id, x.sub_done, x.sub_active,
               x.sub_lease_until, x.sub_piece, x.sub_start_txid, x.sub_start_id, x.sub_end_txid, x.sub_end_id,
               x.sub_lost_batch
          FROM unnest(states) x
         WHERE _put_back.queue_id IS NULL
            OR x.ss_sub IN (SELECT c.sub_id FROM pgque.consumer c WHERE c.sub_queue = _put_back.queue_id);
    WHEN 'delayed_store' THEN
        INSERT INTO pgque.delayed
        SELECT * FROM unnest(events) e WHERE _put_back.queue_id IS NULL OR e.dq_queue = _put_back.queue_id;
        INSERT INTO pgque.delayed_done
        SELECT * FROM unnest(dones) d WHERE _put_back.queue_id IS NULL OR d.dd_queue = _put_back.queue_id;
        IF _put_back.queue_id IS NULL AND pos.dp_seq IS NOT NULL THEN
            pos.dp_part := part;
            INSERT INTO pgque.delayed_pos SELECT pos.*;
        END IF;
    WHEN 'dedup' THEN
        INSERT INTO pgque.dedup
        SELECT * FROM unnest(keys) k WHERE _put_back.queue_id IS NULL OR k.dk_queue = _put_back.queue_id;
    END CASE;
END
$$;

-- _recycle(step, tables, part [, ticks, states, events, dones, pos, keys]):
-- TRUNCATE tables (the partitions of step's store numbered part, locked by
-- the caller) and put back the rows given (_put_back).  Returns true when
-- they are back, forgetting the step's recorded failures.  When they cannot
-- be: everything is undone, the TRUNCATE included; the queues whose rows
-- fail on their own are found, each tried alone and undone again, and
-- recorded (_step_failed); returns false.  Raises when no queue's rows fail
-- alone (the mover's position, say, or rows failing only together).
CREATE FUNCTION pgque._recycle(step text, tables text, part int,
                               ticks pgque.tick[] DEFAULT NULL, states pgque.sub_state[] DEFAULT NULL,
                               events pgque.delayed[] DEFAULT NULL, dones pgque.delayed_done[] DEFAULT NULL,
                               pos pgque.delayed_pos DEFAULT NULL, keys pgque.dedup[] DEFAULT NULL)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    q         int;
    i         int;
    bad       int[] := '{}';
    bad_state text[] := '{}';
    bad_msg   text[] := '{}';
BEGIN
    BEGIN
        EXECUTE format('TRUNCATE %s', tables);
        PERFORM pgque._put_back(step, part, NULL, ticks, states, events, dones, pos, keys);
    EXCEPTION WHEN OTHERS THEN
        BEGIN
            -- Each queue's rows go into the emptied partition, as they
            -- would have (the delayed and dedup rows were noted in it).
            EXECUTE format('TRUNCATE %s', tables);
            FOREACH q IN ARRAY ARRAY(
                    SELECT t.tick_queue FROM unnest(ticks) t
                    UNION SELECT c.sub_queue FROM pgque.consumer c
                           WHERE c.sub_id IN (SELECT x.ss_sub FROM unnest(states) x)
                    UNION SELECT e.dq_queue FROM unnest(events) e
                    UNION SELECT d.dd_queue FROM unnest(dones) d
                    UNION SELECT k.dk_queue FROM unnest(keys) k
                    ORDER BY 1) LOOP
                BEGIN
                    PERFORM pgque._put_back(step, part, q, ticks, states, events, dones, pos, keys);
                    -- PQ000 only undoes the try; it never leaves this block.
                    RAISE EXCEPTION 'undo' USING ERRCODE = 'PQ000';
                EXCEPTION WHEN SQLSTATE 'PQ000' THEN
                    NULL;
                WHEN OTHERS THEN
                    bad := bad || q;
                    bad_state := bad_state || SQLSTATE;
                    bad_msg := bad_msg || SQLERRM;
                END;
            END LOOP;
            RAISE EXCEPTION 'undo' USING ERRCODE = 'PQ000';  -- the TRUNCATE
        EXCEPTION WHEN SQLSTATE 'PQ000' THEN
            NULL;
        END;
        IF cardinality(bad) = 0 THEN
            RAISE;
        END IF;
        FOR i IN 1 .. cardinality(bad) LOOP
            PERFORM pgque._step_failed(bad[i], step, bad_state[i], bad_msg[i]);
        END LOOP;
        RETURN false;
    END;
    PERFORM pgque._steps_ok(step, NULL);
    RETURN true;
END
$$;
