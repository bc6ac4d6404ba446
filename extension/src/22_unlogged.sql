-- Unlogged sequences a promotion left unreadable.
--
-- pgque keeps its hints and registers in unlogged sequences (00_schema.sql,
-- _event_group): they write no WAL, and a crash or a promotion resets them
-- to their start, which every reader of them expects.  PostgreSQL (15 to
-- 18) replays the creation of an unlogged sequence on a standby into its
-- buffers only, and a promotion resets the sequence from the file, which
-- the standby's next restartpoint would have written: an unlogged sequence
-- created since the standby's last restartpoint is a page of zeros after
-- the promotion, and every read of it fails (XX000, "bad magic number in
-- sequence").  Sends and ticks of the queues that use it would fail for
-- good.  Nothing is lost with it (a sequence in its start state is all the
-- promotion leaves anyway), so such a sequence is made again, empty.

-- _unlogged_sequences_ok(): whether every unlogged sequence of pgque can
-- be read: one look at each, in one subtransaction.
CREATE FUNCTION pgque._unlogged_sequences_ok() RETURNS boolean
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_sequence_last_value(c.oid)
       FROM pg_class c
      WHERE c.relnamespace = 'pgque'::regnamespace AND c.relkind = 'S' AND c.relpersistence = 'u';
    RETURN true;
EXCEPTION WHEN internal_error OR data_corrupted THEN
    RETURN false;
END
$$;

-- _remake_unlogged_sequences(): make each unreadable unlogged sequence of
-- pgque again, under its name and with its bounds, in its start state,
-- and point the queues and groups that named it at the new one.  Members
-- of the extension stay members.  Logs a WARNING naming each.  Returns
-- how many it made.
CREATE FUNCTION pgque._remake_unlogged_sequences() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    s      record;
    fresh  regclass;
    member boolean;
    n      int := 0;
BEGIN
    FOR s IN SELECT c.oid::regclass AS seq, c.relname, q.seqmin, q.seqmax, q.seqstart, q.seqincrement
               FROM pg_class c JOIN pg_sequence q ON q.seqrelid = c.oid
              WHERE c.relnamespace = 'pgque'::regnamespace AND c.relkind = 'S' AND c.relpersistence = 'u'
              ORDER BY c.relname
    LOOP
        BEGIN
            PERFORM pg_sequence_last_value(s.seq);
            CONTINUE;
        EXCEPTION WHEN internal_error OR data_corrupted THEN
            NULL;  -- unreadable: made again below
        END;
        member := EXISTS (SELECT 1 FROM pg_depend d
                           WHERE d.classid = 'pg_class'::regclass AND d.objid = s.seq
                             AND d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e');
        IF member THEN
            EXECUTE format('ALTER EXTENSION pgque DROP SEQUENCE %s', s.seq);
        END IF;
        EXECUTE format('DROP SEQUENCE %s', s.seq);
        EXECUTE format('CREATE UNLOGGED SEQUENCE pgque.%I INCREMENT %s MINVALUE %s MAXVALUE %s START %s',
                       s.relname, s.seqincrement, s.seqmin, s.seqmax, s.seqstart);
        fresh := format('pgque.%I', s.relname)::regclass;
        EXECUTE format('REVOKE ALL ON SEQUENCE %s FROM PUBLIC', fresh);
        IF member THEN
            EXECUTE format('ALTER EXTENSION pgque ADD SEQUENCE %s', fresh);
        END IF;
        UPDATE pgque.event_group SET g_hint = fresh WHERE g_hint = s.seq;
        UPDATE pgque.event_group SET g_seen = fresh WHERE g_seen = s.seq;
        UPDATE pgque.queue SET queue_hint_seq = fresh WHERE queue_hint_seq = s.seq;
        UPDATE pgque.queue SET queue_seen_seq = fresh WHERE queue_seen_seq = s.seq;
        RAISE WARNING 'pgque: sequence pgque.% could not be read (a promotion of a standby that had not written it yet): made again', s.relname;
        n := n + 1;
    END LOOP;
    RETURN n;
END
$$;
