-- pgque schema: the catalog of queues, ticks, subscriptions, retry and
-- dead-letter stores, and the event table.
--
-- The hot event path only ever INSERTs; tables are reclaimed by TRUNCATE.

-- Every event row.  One partition per (queue, table) -- pgque.event_<queue_id>_<n>,
-- attached by create_queue() -- so producers insert into this parent with a
-- static, plan-cached INSERT and the row is routed by ev_slot.  The
-- partitions hang off groups of 64 queues' slots (pgque.event_g<n>, ranges
-- of ev_slot): attaching one rebuilds the partition list of its group only,
-- in the creating session and in every session that inserts next, where one
-- flat list of every queue's tables made each create_queue() cost time in
-- proportion to the number of queues (50 to 100 ms at 2,000 queues).
-- ev_txid is the inserting transaction: batches are defined by which
-- transactions became visible between two ticks.
CREATE TABLE pgque.event (
    ev_slot   int         NOT NULL,   -- partition: the queue's queue_slot + table number
    ev_id     bigint      NOT NULL,
    ev_time   timestamptz NOT NULL DEFAULT now(),
    ev_txid   xid8        NOT NULL DEFAULT pg_current_xact_id(),
    ev_owner  int,          -- sub_id of the only consumer that may see this row (retries, replays)
    ev_retry  int,          -- NULL on first delivery, then 1, 2, ...
    ev_type   text,
    ev_data   text,
    ev_extra1 text,
    ev_extra2 text,
    ev_extra3 text,
    ev_extra4 text,
    ev_max_retries int   -- per-event override of the queue's max_retries (send option)
) PARTITION BY RANGE (ev_slot);

-- Groups of partitions.  A queue owns the group starting at its queue_slot;
-- drop_queue() empties and frees it for the next create_queue(), because
-- detaching a partition would lock the whole event table (every producer)
-- while attaching one does not.  Free partitions are named
-- pgque.event_free_<slot>.
CREATE TABLE pgque.event_slot (
    slot_base  int PRIMARY KEY,
    slot_queue int UNIQUE           -- NULL: free
);
CREATE SEQUENCE pgque.event_slot_seq;

-- Send hints (04_ticker.sql, "Hints"): one pair of sequences per partition
-- group of 64 queues.  Every write of events draws from g_hint after it
-- drew its event ids; the ticker copies the value it read into g_seen once
-- every queue of the group has ticked what it holds, so a group whose two
-- values agree needs no look.  Unlogged: written without WAL and without
-- giving the writer an xid, and reset by a crash (or on a promoted
-- standby) to "never called", which reads as "look".
CREATE TABLE pgque.event_group (
    g_id   int PRIMARY KEY,
    g_hint regclass NOT NULL,
    g_seen regclass NOT NULL
);

CREATE TABLE pgque.queue (
    queue_id                 serial PRIMARY KEY,
    queue_name               text NOT NULL UNIQUE,
    queue_ntables            int  NOT NULL DEFAULT 3 CHECK (queue_ntables BETWEEN 3 AND 16),
    queue_slot               int  NOT NULL,   -- first partition slot (pgque.event_slot)
    -- Rotation.  queue_gen counts table switches; the current table is
    -- queue_gen % queue_ntables.  Writers read the generation from the sequence
    -- queue_gen_seq instead of this row, because a sequence is not subject to
    -- the writer's MVCC snapshot (see 10_maint.sql for the proof).
    queue_gen                bigint NOT NULL DEFAULT 0,
    queue_gen_seq            regclass NOT NULL,
    queue_event_seq          regclass NOT NULL,
    queue_hint_seq           regclass NOT NULL,   -- its group's send hint and seen mark
    queue_seen_seq           regclass NOT NULL,   -- (pgque.event_group)
    queue_switch_time        timestamptz NOT NULL DEFAULT now(),
    queue_switch_pre         xid8 NOT NULL,   -- xmax of a snapshot just before the last switch
    queue_switch_post        xid8,            -- an xid drawn after the last switch (step 2); NULL until then
    queue_rotation_period    interval NOT NULL DEFAULT '2 hours',
    -- Ticker thresholds: tick when events are waiting and either max_count of
    -- them piled up or max_lag passed since the last tick; idle queues tick
    -- once per idle_period so consumer positions (and rotation) keep moving.
    queue_ticker_max_count   int      NOT NULL DEFAULT 500,
    queue_ticker_max_lag     interval NOT NULL DEFAULT '0',
    queue_ticker_idle_period interval NOT NULL DEFAULT '1 minute',
    -- Retry policy: a nack of an event that was already retried max_retries
    -- times dead-letters it; otherwise it is retried after
    -- least(backoff_base * 2^retry_count, backoff_cap) unless nack names a delay.
    queue_max_retries        int      NOT NULL DEFAULT 5,
    queue_retry_backoff_base interval NOT NULL DEFAULT '10 seconds',
    queue_retry_backoff_cap  interval NOT NULL DEFAULT '1 hour',
    -- When pause_queue() paused the queue; NULL while it runs.  A paused
    -- queue takes sends and ticks, but hands out nothing to consumers.
    queue_paused_at          timestamptz,
    -- Fraction (0..1) of the computed backoff taken off at random, so that
    -- events failed together are not retried together.
    queue_retry_jitter       float8   NOT NULL DEFAULT 0 CHECK (queue_retry_jitter BETWEEN 0 AND 1),
    queue_created_at         timestamptz NOT NULL DEFAULT now(),
    -- Unclaimed events: while the queue has no consumer, the position (a
    -- tick, copied) from which its events are kept for the first consumer
    -- that subscribes; NULL while it has consumers, or when
    -- keep_unclaimed is off.  It holds back rotation like a consumer's.
    queue_keep_unclaimed     boolean  NOT NULL DEFAULT true,
    queue_unclaimed_tick     bigint,
    queue_unclaimed_time     timestamptz,
    queue_unclaimed_snapshot pg_snapshot,
    queue_unclaimed_seq      bigint
);
CREATE INDEX ON pgque.queue (queue_hint_seq);

-- A tick is a snapshot taken in its own transaction; a batch is the set of
-- events whose transactions became visible between two ticks.  Subscriptions
-- copy the tick data they need, so only each queue's newest tick must stay
-- findable.  Ticks are insert-only and kept in three partitions that
-- maint_rotate_logs() recycles with TRUNCATE (carrying every queue's newest
-- tick into the fresh one): like the event tables, they never leave dead
-- rows, even while a long transaction holds back vacuum.
CREATE TABLE pgque.tick (
    tick_part      int         NOT NULL,  -- partition: log generation % 3 (sequence pgque.log_gen)
    tick_queue     int         NOT NULL,
    tick_id        bigint      NOT NULL,
    tick_time      timestamptz NOT NULL,
    tick_snapshot  pg_snapshot NOT NULL,
    tick_event_seq bigint      NOT NULL,  -- event sequence value read just before the snapshot
    tick_pending   xid8[],                -- in-progress xids that may still carry events counted
                                          -- in tick_event_seq: when one ends, tick again promptly
    PRIMARY KEY (tick_queue, tick_id, tick_part)
) PARTITION BY LIST (tick_part);
CREATE TABLE pgque.tick_0 PARTITION OF pgque.tick FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.tick_1 PARTITION OF pgque.tick FOR VALUES IN (1) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.tick_2 PARTITION OF pgque.tick FOR VALUES IN (2) WITH (autovacuum_enabled = false);
-- The current partition of the tick and consumer-state logs is
-- log_gen % 3; log_switched_at holds the time of the last switch, in epoch
-- milliseconds.  Sequences: read without MVCC, written without leaving row
-- versions behind.
CREATE SEQUENCE pgque.log_gen MINVALUE 0 START 0;
CREATE SEQUENCE pgque.log_switched_at MINVALUE 0 START 0;

CREATE SEQUENCE pgque.tick_id_seq;

-- The ticker's own registers (04_ticker.sql), unlogged like the hints:
-- tick_pass holds the xid of the last ticker() call that moved a group's
-- g_seen after ticking; idle_due the time (epoch microseconds) of the next
-- look for idle queues; tick_turn which dirty group goes first when one
-- call cannot take them all.
CREATE UNLOGGED SEQUENCE pgque.tick_pass MINVALUE 0 START 0;
CREATE UNLOGGED SEQUENCE pgque.idle_due MINVALUE 0 START 0;
CREATE UNLOGGED SEQUENCE pgque.tick_turn MINVALUE 0 START 0;
-- Which 64th of the queues maint() checks for a crashed table switch
-- (10_maint.sql, _rotation_candidates).
CREATE UNLOGGED SEQUENCE pgque.maint_turn MINVALUE 0 START 0;
CREATE SEQUENCE pgque.batch_id_seq;

-- Consumers: one row per (queue, consumer), never updated.  Calls that
-- change a consumer's position lock its row FOR UPDATE, which serializes
-- them without leaving a row version behind.
-- A cooperative worker (16_workers.sql) is a row too: sub_parent is its
-- consumer, and its name is '<consumer>/<worker>' ('/' is not allowed in
-- consumer names, so the two never collide).
CREATE TABLE pgque.consumer (
    sub_id         serial PRIMARY KEY,
    sub_queue      int  NOT NULL REFERENCES pgque.queue ON DELETE CASCADE,
    sub_consumer   text NOT NULL,
    sub_created_at timestamptz NOT NULL DEFAULT now(),
    sub_parent     int REFERENCES pgque.consumer ON DELETE CASCADE,
    UNIQUE (sub_queue, sub_consumer)
);
CREATE INDEX ON pgque.consumer (sub_parent) WHERE sub_parent IS NOT NULL;

-- A consumer's position, open batch and progress, as insert-only rows: each
-- change INSERTs the whole new state and the newest row (highest ss_seq)
-- wins.  Like ticks, the rows live in three partitions that
-- maint_rotate_logs() recycles with TRUNCATE, carrying each consumer's newest
-- state along, so they never leave dead rows: an UPDATE per receive and ack
-- would, and under a held xmin horizon every lookup would have to step over
-- them.  The tick a batch starts from (last) and ends at (next) is copied
-- here, snapshot included, so batches never depend on tick rows.
CREATE TABLE pgque.sub_state (
    ss_part           int    NOT NULL,   -- partition: log generation % 3 (sequence pgque.log_gen)
    ss_sub            int    NOT NULL,   -- pgque.consumer.sub_id
    ss_seq            bigint NOT NULL,   -- newest wins
    sub_last_tick     bigint      NOT NULL,
    sub_last_time     timestamptz NOT NULL,
    sub_last_snapshot pg_snapshot NOT NULL,
    sub_last_seq      bigint      NOT NULL,
    -- The open batch, if any.
    sub_batch         bigint,
    sub_next_tick     bigint,
    sub_next_time     timestamptz,
    sub_next_snapshot pg_snapshot,
    sub_next_seq      bigint,
    -- Progress inside the open batch, as (ev_txid, ev_id) positions in delivery
    -- order: receive() hands out rows after sub_ack_*, ack() moves sub_ack_* up
    -- to sub_sent_*, and the batch is finished once sub_done says the last
    -- handed-out row was the batch's last.
    sub_ack_txid      xid8,
    sub_ack_id        bigint,
    sub_sent_txid     xid8,
    sub_sent_id       bigint,
    sub_done          boolean NOT NULL DEFAULT false,
    sub_active        timestamptz NOT NULL DEFAULT now(),
    sub_lease_until   timestamptz,       -- workers: the open batch is theirs until then
    -- The newest piece handed out of the open batch: its id (the batch_id of
    -- its messages, drawn from batch_id_seq) and, in the state saved when it
    -- was handed out, its end in sub_sent_* / sub_done.  ack(piece) finds
    -- that state by this id, so an ack only ever covers what its caller
    -- received (07_consume.sql).
    sub_piece         bigint,
    -- A worker's window cut from inside a tick range (16_workers.sql): it
    -- holds the batch's rows after sub_start_* up to sub_end_* only.
    sub_start_txid    xid8,
    sub_start_id      bigint,
    sub_end_txid      xid8,
    sub_end_id        bigint,
    -- The last batch another worker took over from this one (its lease ran
    -- out): a late ack or nack of a piece of it fails with PQ028.
    sub_lost_batch    bigint
) PARTITION BY LIST (ss_part);
CREATE TABLE pgque.sub_state_0 PARTITION OF pgque.sub_state FOR VALUES IN (0) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.sub_state_1 PARTITION OF pgque.sub_state FOR VALUES IN (1) WITH (autovacuum_enabled = false);
CREATE TABLE pgque.sub_state_2 PARTITION OF pgque.sub_state FOR VALUES IN (2) WITH (autovacuum_enabled = false);
CREATE INDEX ON pgque.sub_state (ss_sub, ss_seq);
CREATE INDEX ON pgque.sub_state (sub_batch);
CREATE INDEX ON pgque.sub_state (sub_piece) WHERE sub_piece IS NOT NULL;
CREATE SEQUENCE pgque.sub_state_seq;

-- A consumer as the code works with it: identity and newest state.
CREATE VIEW pgque.subscription AS
SELECT c.sub_id, c.sub_queue, c.sub_consumer,
       st.sub_last_tick, st.sub_last_time, st.sub_last_snapshot, st.sub_last_seq,
       st.sub_batch, st.sub_next_tick, st.sub_next_time, st.sub_next_snapshot, st.sub_next_seq,
       st.sub_ack_txid, st.sub_ack_id, st.sub_sent_txid, st.sub_sent_id, st.sub_done, st.sub_active,
       c.sub_created_at, c.sub_parent, st.sub_lease_until, st.sub_piece,
       st.sub_start_txid, st.sub_start_id, st.sub_end_txid, st.sub_end_id, st.sub_lost_batch
  FROM pgque.consumer c
 CROSS JOIN LATERAL (SELECT * FROM pgque.sub_state x WHERE x.ss_sub = c.sub_id
                      ORDER BY x.ss_seq DESC LIMIT 1) st;

-- Events nacked by one consumer, waiting to be re-inserted (owned by it) when due.
CREATE TABLE pgque.retry_queue (
    rq_sub    int NOT NULL REFERENCES pgque.consumer ON DELETE CASCADE,
    rq_queue  int NOT NULL,
    rq_due    timestamptz NOT NULL,
    ev_id     bigint NOT NULL,
    ev_time   timestamptz NOT NULL,
    ev_retry  int,          -- as in pgque.event: NULL while it never failed (snoozed)
    ev_type   text,
    ev_data   text,
    ev_extra1 text,
    ev_extra2 text,
    ev_extra3 text,
    ev_extra4 text,
    ev_max_retries int,
    rq_reason text,         -- why the attempt failed, as nack() was told (NULL: not said, or snoozed)
    PRIMARY KEY (rq_sub, ev_id)
);
CREATE INDEX retry_queue_due_idx ON pgque.retry_queue (rq_due);

-- Events that exhausted their retries for one consumer.
CREATE TABLE pgque.dead_letter (
    dl_id       bigserial PRIMARY KEY,
    dl_queue    int  NOT NULL REFERENCES pgque.queue ON DELETE CASCADE,
    dl_consumer text NOT NULL,
    dl_time     timestamptz NOT NULL DEFAULT now(),
    dl_reason   text,
    ev_id       bigint NOT NULL,
    ev_time     timestamptz NOT NULL,
    ev_txid     xid8,
    ev_retry    int,
    ev_type     text,
    ev_data     text,
    ev_extra1   text,
    ev_extra2   text,
    ev_extra3   text,
    ev_extra4   text,
    ev_max_retries int,
    UNIQUE (dl_queue, dl_consumer, ev_id)
);
CREATE INDEX dead_letter_time_idx ON pgque.dead_letter (dl_queue, dl_time);

-- Failures of a queue's periodic work (ticker(), maint()): one row per
-- queue and step ('tick', 'rotate', 'retry', 'delayed'), overwritten by the
-- next failure of that step and deleted when the step next succeeds or the
-- queue is dropped, so it stays as small as the number of failing queues.
-- Metadata, never on the event path.  No foreign key: recording a failure
-- must not wait for a drop_queue of the same queue (rows of a queue that is
-- gone are ignored by the info functions and deleted by maint()).
CREATE TABLE pgque.queue_error (
    qe_queue    int  NOT NULL,
    qe_step     text NOT NULL,
    qe_sqlstate text NOT NULL,
    qe_message  text NOT NULL,
    qe_at       timestamptz NOT NULL DEFAULT now(),
    qe_count    bigint NOT NULL DEFAULT 1,  -- consecutive failures of the step
    PRIMARY KEY (qe_queue, qe_step)
);

-- What receive() returns.
CREATE TYPE pgque.message AS (
    msg_id      bigint,
    batch_id    bigint,
    type        text,
    payload     text,
    retry_count int,
    created_at  timestamptz,
    extra1      text,
    extra2      text,
    extra3      text,
    extra4      text
);

-- Where a batch's events are and where reading resumes, worked out once per
-- call by _batch_ctx() and handed to the batch queries as one parameter.
CREATE TYPE pgque._batch_ctx AS (
    lo         xid8,          -- xmax of the start tick: range scan starts here
    hi         xid8,          -- xmax of the end tick: range scan ends before here
    snap       pg_snapshot,   -- the end tick's snapshot
    stragglers xid8[],        -- in progress at the start tick, finished by the end tick
    tables     text[],        -- event tables that may hold the batch's rows
    sub_id     int,           -- the consumer: retried copies are visible to their owner only
    after_txid xid8,          -- read after this (ev_txid, ev_id) position:
    after_id   bigint,        --   the acknowledged one, (0, 0) at first
    range_txid xid8,          -- the same position, raised to (lo, 0) for the range
    range_id   bigint,        --   scan (see _batch_sql)
    end_txid   xid8,          -- a window cut from a tick range ends with this row;
    end_id     bigint,        --   NULL: the batch ends with the end tick
    cancels    int            -- the queue id when the batch may hold a cancelled message
                              -- (21_jobs.sql): skip them; NULL: none
);

-- Keep the catalog in pg_dump output when installed as an extension.
DO $$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('pgque.queue', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.consumer', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.sub_state_0', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.sub_state_1', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.sub_state_2', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.tick_0', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.tick_1', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.tick_2', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.retry_queue', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.dead_letter', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.event_slot', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.event_group', '');
    -- Sequences too: restored tables with fresh sequences would hand out
    -- tick, batch and state ids that exist already (consumers would stall).
    PERFORM pg_catalog.pg_extension_config_dump('pgque.queue_queue_id_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.consumer_sub_id_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.dead_letter_dl_id_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.event_slot_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.log_gen', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.log_switched_at', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.tick_id_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.batch_id_seq', '');
    PERFORM pg_catalog.pg_extension_config_dump('pgque.sub_state_seq', '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- plain SQL install (pgque migrate): not an extension, nothing to mark
END
$$;
