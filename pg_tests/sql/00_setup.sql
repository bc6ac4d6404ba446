-- Shared setup for every test file (pg_regress runs them in one database,
-- in name order): the extension, dblink for second sessions, and helpers.
CREATE EXTENSION pgque;
CREATE EXTENSION dblink;
SELECT pgque.version() = extversion AS version_is_the_extensions FROM pg_extension WHERE extname = 'pgque';

CREATE SCHEMA test;
-- test.err(sql): run sql, return 'SQLSTATE: message' of its error, or 'ok'.
-- Lets tests assert the stable SQLSTATE, not only the message.
CREATE FUNCTION test.err(sql text) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE sql;
    RETURN 'ok';
EXCEPTION WHEN OTHERS THEN
    RETURN SQLSTATE || ': ' || SQLERRM;
END
$$;
-- test.ids(queue, consumer, max): receive and return the msg ids as an array.
CREATE FUNCTION test.ids(q text, c text, n int DEFAULT 1000) RETURNS bigint[] LANGUAGE sql AS $$
    SELECT coalesce(array_agg(msg_id ORDER BY msg_id), '{}') FROM pgque.receive(q, c, n)
$$;
-- test.batch(queue, consumer): the open batch id of a consumer, NULL if none.
CREATE FUNCTION test.batch(q text, c text) RETURNS bigint LANGUAGE sql AS $$
    SELECT current_batch FROM pgque.get_consumer_info(q, c)
$$;
-- test.piece(queue, consumer [, worker]): the id of the piece last handed
-- out of the open batch of a consumer (or of one of its workers), as the
-- batch_id of receive()'s rows says it: what ack() and nack() take.  NULL
-- without an open batch.  SECURITY DEFINER: tests call it under other roles.
CREATE FUNCTION test.piece(q text, c text, w text DEFAULT NULL) RETURNS bigint
LANGUAGE sql SECURITY DEFINER AS $$
    SELECT s.sub_piece FROM pgque.subscription s JOIN pgque.queue x ON x.queue_id = s.sub_queue
     WHERE x.queue_name = q AND s.sub_consumer = c || coalesce('/' || w, '') AND s.sub_batch IS NOT NULL
$$;
-- test.drain(queue, consumer): receive and ack until nothing is left; the
-- msg ids received, in delivery order.  Each receive/ack is its own statement
-- in the caller's transaction, so call it in autocommit after a tick.
CREATE FUNCTION test.drain(q text, c text, n int DEFAULT 1000) RETURNS bigint[] LANGUAGE plpgsql AS $$
DECLARE
    got bigint[] := '{}';
    m   pgque.message;
    b   bigint;
BEGIN
    LOOP
        b := NULL;
        FOR m IN SELECT * FROM pgque.receive(q, c, n) LOOP
            got := got || m.msg_id;
            b := m.batch_id;
        END LOOP;
        EXIT WHEN b IS NULL;
        PERFORM pgque.ack(b);
    END LOOP;
    RETURN got;
END
$$;
