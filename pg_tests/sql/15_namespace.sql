-- 15_namespace: namespaces and per-tenant access (17_namespace.sql).
--
-- Two tenants, acme (admin of namespace acme) and globex (send to one
-- queue, receive from its namespace), each a member of pgque_tenant.  The
-- checks use the session's login role, so the tenants are switched to with
-- SET SESSION AUTHORIZATION (SET ROLE keeps the superuser's rights).
-- Another tenant's queues look the same whether they exist or not.

CREATE ROLE t_acme;
CREATE ROLE t_globex;
CREATE ROLE t_global_writer;
GRANT pgque_tenant TO t_acme, t_globex;
GRANT pgque_writer TO t_global_writer;
GRANT USAGE ON SCHEMA test TO t_acme, t_globex, t_global_writer;

SELECT pgque.create_queue('acme.orders'), pgque.create_queue('globex.orders'),
       pgque.create_queue('globex.other'), pgque.create_queue('q15_plain');
SELECT pgque.grant_access('t_acme', 'admin', namespace => 'acme');
SELECT pgque.grant_access('t_globex', 'send', queue_name => 'globex.orders');
SELECT pgque.grant_access('t_globex', 'receive', namespace => 'globex');
SELECT pgque.grant_access('t_globex', 'receive', namespace => 'globex') AS again;
SELECT * FROM pgque.list_access();
SELECT pgque.subscribe('globex.orders', 'audit');
SELECT pgque.create_schedule('q15_global_sched', 'globex.orders', 't', 'x', every => '1 hour') IS NOT NULL AS scheduled;

---------------------------------------------------------------------------
-- acme: everything inside its namespace, nothing outside it.
---------------------------------------------------------------------------
SET SESSION AUTHORIZATION t_acme;
SELECT session_user, current_user;
SELECT pgque.create_queue('acme.jobs');
SELECT pgque.set_queue_config('acme.jobs', 'max_retries', '1');
SELECT pgque.subscribe('acme.orders', 'billing');
SELECT pgque.send('acme.orders', 't', 'a1') IS NOT NULL AS sent;
SELECT pgque.force_tick('acme.orders') IS NOT NULL AS ticked;
-- a tenant cannot read event tables: receive_query() says so and hands out
-- nothing, receive() does it all
SELECT direct, batch_id FROM pgque.receive_query('acme.orders', 'billing', 10);
SELECT payload FROM pgque.receive('acme.orders', 'billing', 10);
SELECT pgque.ack(test.piece('acme.orders', 'billing')) AS ack;
SELECT pgque.pause_queue('acme.jobs'), pgque.resume_queue('acme.jobs');
SELECT pgque.create_schedule('acme_nightly', 'acme.jobs', 't', 'x', cron => '0 3 * * *') IS NOT NULL AS scheduled;
-- info shows acme's queues and consumers only
SELECT queue_name FROM pgque.get_queue_info() ORDER BY 1;
SELECT queue_name, consumer_name FROM pgque.get_consumer_info() ORDER BY 1, 2;
SELECT schedule_name FROM pgque.list_schedules();
-- another tenant's queues, existing or not: 42501, never "not found"
SELECT test.err($$SELECT pgque.send('globex.orders', 't', 'x')$$) AS send_other;
SELECT test.err($$SELECT pgque.send('globex.nope', 't', 'x')$$) AS send_missing;
SELECT test.err($$SELECT * FROM pgque.get_queue_info('globex.orders')$$) AS inspect_other;
SELECT test.err($$SELECT * FROM pgque.receive('globex.orders', 'audit', 10)$$) AS receive_other;
SELECT test.err($$SELECT pgque.subscribe('globex.orders', 'spy')$$) AS subscribe_other;
SELECT test.err($$SELECT pgque.create_queue('globex.mine')$$) AS create_other;
SELECT test.err($$SELECT pgque.create_queue('unscoped')$$) AS create_global;
SELECT test.err($$SELECT pgque.drop_queue('q15_plain', true)$$) AS drop_global;
SELECT test.err($$SELECT * FROM pgque.dlq_list('globex.orders')$$) AS dlq_other;
SELECT test.err($$SELECT pgque.send_at('globex.orders', 't', 'x', now() + interval '1 hour')$$) AS send_at_other;
SELECT test.err($$SELECT pgque.send_unique('globex.orders', 't', 'x', 'k')$$) AS send_unique_other;
-- database-wide calls are not for tenants
SELECT test.err($$SELECT pgque.ticker()$$) AS ticker_all;
SELECT test.err($$SELECT pgque.maint()$$) AS maint;
SELECT test.err($$SELECT * FROM pgque.get_table_info()$$) AS table_info;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'admin', namespace => 'globex')$$) AS grant_self;
SELECT test.err($$SELECT * FROM pgque.list_access()$$) AS list_access;
RESET SESSION AUTHORIZATION;

---------------------------------------------------------------------------
-- globex: sends to globex.orders only, consumes its whole namespace,
-- inspects what it may send to or consume from, administers nothing.
---------------------------------------------------------------------------
SELECT pgque.send('globex.other', 't', 'o1') IS NOT NULL AS sent_by_admin;
SELECT pgque.force_tick('globex.other') IS NOT NULL AS ticked;
SET SESSION AUTHORIZATION t_globex;
SELECT pgque.send('globex.orders', 't', 'g1') IS NOT NULL AS sent;
SELECT test.err($$SELECT pgque.send('globex.other', 't', 'g2')$$) AS send_other_queue;
SELECT pgque.subscribe('globex.other', 'worker');
-- the queue's first consumer: it gets what was sent before it (unclaimed events)
SELECT count(*) AS unclaimed_kept FROM pgque.receive('globex.other', 'worker', 10);
SELECT queue_name FROM pgque.get_queue_info() ORDER BY 1;
SELECT test.err($$SELECT pgque.create_queue('globex.new')$$) AS create_without_admin;
SELECT test.err($$SELECT pgque.force_tick('globex.orders')$$) AS tick_without_admin;
SELECT test.err($$SELECT pgque.pause_queue('globex.orders')$$) AS pause_without_admin;
SELECT paused FROM pgque.get_queue_info('globex.orders');
SELECT test.err($$SELECT * FROM pgque.get_consumer_info('acme.orders')$$) AS inspect_acme;
SELECT schedule_name FROM pgque.list_schedules();
RESET SESSION AUTHORIZATION;

-- batches of another tenant are as unknown as batches that do not exist
SELECT pgque.send('globex.orders', 't', 'g3') IS NOT NULL AS sent;
SELECT pgque.force_tick('globex.orders') IS NOT NULL AS ticked;
SELECT count(*) AS audit_got FROM pgque.receive('globex.orders', 'audit', 10);
SELECT test.batch('globex.orders', 'audit') AS globex_batch, test.piece('globex.orders', 'audit') AS globex_piece \gset
SET SESSION AUTHORIZATION t_acme;
SELECT pgque.ack(:globex_piece) AS ack_other, pgque.heartbeat(:globex_piece) AS heartbeat_other;
SELECT regexp_replace(test.err(format('SELECT pgque.nack(%s, 1)', :globex_piece)), 'batch \d+', 'batch N') AS nack_other;
-- a batch id is as unknown as a piece: no PQ027 that would tell it exists
SELECT pgque.ack(:globex_batch) AS ack_other_batch_id;
SELECT regexp_replace(test.err(format('SELECT * FROM pgque.get_batch_info(%s)', :globex_batch)), 'batch \d+', 'batch N') AS batch_info_other;
SELECT test.err($$SELECT pgque.drop_schedule('q15_global_sched')$$) AS drop_other_schedule;
RESET SESSION AUTHORIZATION;
SELECT pgque.ack(:globex_piece) AS ack_own;

-- a member of a global role keeps its rights on every queue
SET SESSION AUTHORIZATION t_global_writer;
SELECT pgque.send('acme.orders', 't', 'w1') IS NOT NULL AS sent_acme,
       pgque.send('globex.orders', 't', 'w2') IS NOT NULL AS sent_globex;
RESET SESSION AUTHORIZATION;

---------------------------------------------------------------------------
-- Managing grants: errors, revoke.
---------------------------------------------------------------------------
SELECT test.err($$SELECT pgque.grant_access('t_nobody_here', 'send', namespace => 'acme')$$) AS unknown_role;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'write', namespace => 'acme')$$) AS bad_privilege;
SELECT test.err($$SELECT pgque.grant_access('t_acme', NULL, namespace => 'acme')$$) AS null_privilege;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'send')$$) AS no_scope;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'send', 'acme', 'acme.orders')$$) AS two_scopes;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'send', namespace => 'a.b')$$) AS dotted_namespace;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'send', namespace => '')$$) AS empty_namespace;
SELECT test.err($$SELECT pgque.grant_access('t_acme', 'send', queue_name => 'bad name')$$) AS bad_queue;
SELECT pgque.revoke_access('t_globex', 'send', queue_name => 'globex.orders') AS revoked,
       pgque.revoke_access('t_globex', 'send', queue_name => 'globex.orders') AS again;
SET SESSION AUTHORIZATION t_globex;
SELECT test.err($$SELECT pgque.send('globex.orders', 't', 'g4')$$) AS send_after_revoke;
-- still a consumer of the namespace
SELECT count(*) >= 0 AS can_receive FROM pgque.receive('globex.other', 'worker', 10);
RESET SESSION AUTHORIZATION;

-- a pgque_tenant member without grants can do nothing to any queue
CREATE ROLE t_bare;
GRANT pgque_tenant TO t_bare;
GRANT USAGE ON SCHEMA test TO t_bare;
SET SESSION AUTHORIZATION t_bare;
SELECT test.err($$SELECT pgque.send('q15_plain', 't', 'x')$$) AS bare_send;
SELECT count(*) AS bare_sees FROM pgque.get_queue_info();
RESET SESSION AUTHORIZATION;

-- the list functions filter by namespace
SELECT queue_name FROM pgque.get_queue_info(namespace => 'globex') ORDER BY 1;
SELECT queue_name, consumer_name FROM pgque.get_consumer_info(namespace => 'acme');
SELECT schedule_name FROM pgque.list_schedules(namespace => 'acme');
SELECT count(*) AS none FROM pgque.get_queue_info(namespace => 'nobody');

SELECT pgque.drop_schedule('acme_nightly'), pgque.drop_schedule('q15_global_sched');
SELECT pgque.drop_queue(q, true) FROM unnest(ARRAY['acme.orders', 'acme.jobs', 'globex.orders', 'globex.other', 'q15_plain']) q;
DELETE FROM pgque.acl;
REVOKE USAGE ON SCHEMA test FROM t_acme, t_globex, t_global_writer, t_bare;
DROP ROLE t_acme, t_globex, t_global_writer, t_bare;
