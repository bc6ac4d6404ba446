-- Namespaces and per-tenant access.
--
-- A queue named '<namespace>.<rest>' belongs to that namespace (the part
-- before the first '.'); a name without '.' belongs to none.  Namespaces need
-- no creating: granting on one is enough.
--
-- Who may do what to a queue:
--   * members of the global roles, on every queue, as before: pgque_writer
--     sends, pgque_reader consumes, pgque_admin does everything, all three
--     inspect;
--   * members of a role granted a privilege on the queue's namespace or on
--     the queue (grant_access), on those queues only.  Such roles are made
--     members of pgque_tenant, which lets them call the API, and nothing
--     else.
-- Privileges: 'send'; 'receive' (subscribe, receive, ack, nack, workers);
-- 'inspect' (info, dead letters listed); 'admin' (all of them, plus
-- create/drop/configure/pause the queues, dead letters, schedules).  'send'
-- and 'receive' include 'inspect'.
--
-- The role checked is the session's login role (session_user), through its
-- memberships: SECURITY DEFINER functions run as their owner and cannot see
-- the role a session SET ROLE to.  A login therefore has the rights of every
-- role it may become; give each tenant's application a login of its own.
-- Access is decided from the queue's name, before looking the queue up, so
-- a tenant cannot tell another tenant's queues from missing ones.
--
-- Grants name the role by OID (regrole), as PostgreSQL's own privileges do:
-- they follow ALTER ROLE ... RENAME, a dropped role's grants match nobody
-- from the moment it is dropped (a role created later under its name gets
-- nothing), and maint() deletes them.  pg_dump writes a regrole as the
-- role's name and a restore reads it back as the new cluster's OID.

CREATE TABLE pgque.acl (
    acl_role      regrole NOT NULL,
    acl_namespace text,            -- exactly one of namespace and queue
    acl_queue     text,
    acl_privilege text NOT NULL CHECK (acl_privilege IN ('send', 'receive', 'inspect', 'admin')),
    CHECK ((acl_namespace IS NULL) <> (acl_queue IS NULL))
);
CREATE UNIQUE INDEX acl_key ON pgque.acl (acl_role, coalesce(acl_namespace, ''), coalesce(acl_queue, ''), acl_privilege);
CREATE INDEX ON pgque.acl (acl_namespace);
CREATE INDEX ON pgque.acl (acl_queue);

DO $$
BEGIN
    PERFORM pg_catalog.pg_extension_config_dump('pgque.acl', '');
EXCEPTION WHEN feature_not_supported THEN
    NULL;  -- plain SQL install
END
$$;

-- _namespace(queue_name): the namespace of a queue name, NULL when none.
CREATE FUNCTION pgque._namespace(queue_name text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE WHEN strpos(queue_name, '.') > 1 THEN split_part(queue_name, '.', 1) END
$$;

-- _may_everywhere(privilege): is this session in the global role that
-- allows privilege on every queue?  No table is read: on the hot path (send,
-- receive by the global roles) this is the whole check.
CREATE FUNCTION pgque._may_everywhere(privilege text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT CASE privilege
               WHEN 'send' THEN pg_has_role(session_user, 'pgque_writer', 'MEMBER')
               WHEN 'receive' THEN pg_has_role(session_user, 'pgque_reader', 'MEMBER')
               WHEN 'admin' THEN pg_has_role(session_user, 'pgque_admin', 'MEMBER')
               ELSE pg_has_role(session_user, 'pgque_reader', 'MEMBER')
                 OR pg_has_role(session_user, 'pgque_writer', 'MEMBER')
           END
$$;

-- _may_granted(queue_name, privilege): did grant_access give this session
-- privilege on the queue or its namespace?
CREATE FUNCTION pgque._may_granted(queue_name text, privilege text) RETURNS boolean
LANGUAGE sql STABLE AS $$
    SELECT EXISTS (SELECT 1 FROM pgque.acl a
                    WHERE (a.acl_queue = queue_name OR a.acl_namespace = pgque._namespace(queue_name))
                      AND (a.acl_privilege = privilege OR a.acl_privilege = 'admin'
                           OR (privilege = 'inspect' AND a.acl_privilege IN ('send', 'receive')))
                      AND pg_has_role(session_user, a.acl_role::oid, 'MEMBER'))
$$;

-- _may(queue_name, privilege): may this session do privilege to the queue?
CREATE FUNCTION pgque._may(queue_name text, privilege text) RETURNS boolean
LANGUAGE plpgsql STABLE AS $$
BEGIN
    -- Two statements, not one OR: a cached plan locks every table it names
    -- whenever it runs, and the acl table's locks cost the global roles'
    -- sends a lock-manager round trip each (measured: send 0.8 -> 0.5 x INSERT).
    IF pgque._may_everywhere(privilege) THEN
        RETURN true;
    END IF;
    RETURN pgque._may_granted(queue_name, privilege);
END
$$;

-- _authorize(queue_name, privilege): raise 42501 unless _may.
CREATE FUNCTION pgque._authorize(queue_name text, privilege text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pgque._may(queue_name, privilege) THEN
        RAISE EXCEPTION 'pgque: permission denied: role % may not % queue %', quote_ident(session_user),
            CASE privilege WHEN 'send' THEN 'send to' WHEN 'receive' THEN 'consume from'
                           WHEN 'admin' THEN 'administer' ELSE 'inspect' END,
            pgque._quote(queue_name)
            USING ERRCODE = 'insufficient_privilege',
                  HINT = 'pgque.grant_access() grants privileges on a namespace or a queue.';
    END IF;
END
$$;

-- _require_global_admin(what): raise 42501 unless the session is a member
-- of pgque_admin (database-wide calls: ticker, maint, access management).
CREATE FUNCTION pgque._require_global_admin(what text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF NOT pg_has_role(session_user, 'pgque_admin', 'MEMBER') THEN
        RAISE EXCEPTION 'pgque: permission denied: % needs pgque_admin', what
            USING ERRCODE = 'insufficient_privilege';
    END IF;
END
$$;

-- _check_namespace(namespace): PQ006 unless namespace is a valid namespace
-- name: a queue name's part before its first '.' (so at most 56 bytes).
CREATE FUNCTION pgque._check_namespace(namespace text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgque._check_name('namespace', namespace, 56);
    IF strpos(namespace, '.') > 0 THEN
        PERFORM pgque._invalid('namespace', format('%s may not contain "."', pgque._quote(namespace)));
    END IF;
END
$$;

-- _check_scope(namespace, queue_name): PQ006 unless exactly one is given and
-- it is a valid name.
CREATE FUNCTION pgque._check_scope(namespace text, queue_name text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF (namespace IS NULL) = (queue_name IS NULL) THEN
        PERFORM pgque._invalid('scope', 'give exactly one of namespace and queue_name');
    ELSIF namespace IS NOT NULL THEN
        PERFORM pgque._check_namespace(namespace);
    ELSE
        PERFORM pgque._check_name('queue', queue_name, 57);
    END IF;
END
$$;

-- _grant_args(what, role_name, privilege, namespace, queue_name): the checks
-- grant_access and revoke_access (what) share.  Deletes the grants of
-- dropped roles on the way, as maint() does, for databases where maint()
-- does not run.
-- Returns the role.  Errors: PQ006 (unknown role, bad privilege, bad scope),
-- 42501 unless the session is in pgque_admin.
CREATE FUNCTION pgque._grant_args(what text, role_name name, privilege text,
                                  namespace text, queue_name text) RETURNS regrole
LANGUAGE plpgsql AS $$
DECLARE
    r regrole;
BEGIN
    PERFORM pgque._require_global_admin(what);
    PERFORM pgque._check_scope(namespace, queue_name);
    SELECT oid INTO r FROM pg_roles WHERE rolname = role_name;
    IF r IS NULL THEN
        PERFORM pgque._invalid('role', format('%s does not exist', coalesce(quote_ident(role_name), 'NULL')));
    ELSIF privilege IS NULL OR privilege NOT IN ('send', 'receive', 'inspect', 'admin') THEN
        PERFORM pgque._invalid('privilege',
            format('%s (expected send, receive, inspect or admin)', pgque._quote(privilege)));
    END IF;
    PERFORM pgque._forget_dropped_roles();
    RETURN r;
END
$$;

-- _forget_dropped_roles(): delete the grants of roles that were dropped
-- (maint() calls it).  They match nobody already; deleting them keeps an
-- OID that PostgreSQL hands out again, after its OID counter wrapped
-- around, from reviving one.  Returns the number deleted.
CREATE FUNCTION pgque._forget_dropped_roles() RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    n int;
BEGIN
    DELETE FROM pgque.acl a WHERE NOT EXISTS (SELECT 1 FROM pg_roles r WHERE r.oid = a.acl_role);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- grant_access(role_name, privilege, namespace => .. | queue_name => ..):
-- let members of role_name do privilege ('send', 'receive', 'inspect' or
-- 'admin') to every queue of the namespace, or to one queue (by name: it
-- need not exist yet).  The grant is the role's, not its name's: it follows
-- a rename and ends when the role is dropped.
-- Returns 1, or 0 when it was granted already.
-- Errors: PQ006 (unknown role, bad privilege, not exactly one of namespace
-- and queue_name, bad name); 42501 unless the caller is in pgque_admin.
CREATE FUNCTION pgque.grant_access(role_name name, privilege text,
                                   namespace text DEFAULT NULL, queue_name text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    r regrole := pgque._grant_args('grant_access()', role_name, privilege, namespace, queue_name);
    n int;
BEGIN
    INSERT INTO pgque.acl (acl_role, acl_namespace, acl_queue, acl_privilege)
    VALUES (r, namespace, queue_name, privilege)
    ON CONFLICT DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- revoke_access(role_name, privilege, namespace => .. | queue_name => ..):
-- undo grant_access.  Returns 1, or 0 when there was no such grant.
-- Errors: PQ006, 42501 as grant_access.
CREATE FUNCTION pgque.revoke_access(role_name name, privilege text,
                                    namespace text DEFAULT NULL, queue_name text DEFAULT NULL) RETURNS int
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
DECLARE
    r regrole := pgque._grant_args('revoke_access()', role_name, privilege, namespace, queue_name);
    n int;
BEGIN
    DELETE FROM pgque.acl
     WHERE acl_role = r AND acl_privilege = privilege
       AND acl_namespace IS NOT DISTINCT FROM namespace AND acl_queue IS NOT DISTINCT FROM queue_name;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- list_access(): every grant_access grant, under the role's current name.
-- Grants of dropped roles are not listed (they match nobody).
-- Errors: 42501 unless pgque_admin.
CREATE FUNCTION pgque.list_access()
RETURNS TABLE (role_name name, privilege text, namespace text, queue_name text)
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pgque, pg_temp AS $$
BEGIN
    PERFORM pgque._require_global_admin('list_access()');
    RETURN QUERY SELECT r.rolname, a.acl_privilege, a.acl_namespace, a.acl_queue
                   FROM pgque.acl a JOIN pg_roles r ON r.oid = a.acl_role
                  ORDER BY 1, 3, 4, 2;
END
$$;
