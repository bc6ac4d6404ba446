-- 21_leader: leader leases (18_leader.sql).  One holder at a time per name;
-- the holder renews; another holder takes over only once the lease expired
-- or was released; the arguments have ranges (PQ006); only pgque_admin may
-- call the functions; a renewal is a HOT update and a refused attempt
-- writes nothing.
--
-- Times are never printed: leader_info's times are compared, not shown.

-- a free lease is taken; the holder renews it; another holder is refused
SELECT pgque.leader_lease('t21', 'a', '1 minute') AS a_takes;
SELECT pgque.leader_lease('t21', 'a', '1 minute') AS a_renews;
SELECT pgque.leader_lease('t21', 'b', '1 minute') AS b_refused;
SELECT holder, valid, expires_at > clock_timestamp() + interval '50 seconds' AS expires_in_a_minute,
       acquired_at <= clock_timestamp() AS acquired_past
  FROM pgque.leader_info('t21');
-- a renewal keeps acquired_at and moves expires_at
SELECT acquired_at AS acq1, expires_at AS exp1 FROM pgque.leader_info('t21') \gset
SELECT pgque.leader_lease('t21', 'a', '2 minutes') AS a_renews_longer;
SELECT acquired_at = :'acq1' AS acquired_kept, expires_at > :'exp1' AS expiry_moved FROM pgque.leader_info('t21');
-- leases of other names are separate
SELECT pgque.leader_lease('t21.other', 'b', '1 minute') AS b_takes_other;
-- release: only the holder's counts; then another holder takes it at once
SELECT pgque.leader_release('t21', 'b') AS b_release_not_held;
SELECT pgque.leader_release('t21', 'a') AS a_releases;
SELECT count(*) AS rows_after_release FROM pgque.leader_info('t21');
SELECT pgque.leader_lease('t21', 'b', '1 minute') AS b_takes_released;
SELECT holder FROM pgque.leader_info('t21');
-- an expired lease is taken over, with a new acquired_at; the old holder is
-- refused and sees it is no longer valid for it
SELECT pgque.leader_lease('t21', 'b', '1 millisecond') AS b_short;
SELECT pg_sleep(0.05);
SELECT holder, valid FROM pgque.leader_info('t21');
SELECT pgque.leader_lease('t21', 'c', '1 minute') AS c_takes_expired;
SELECT pgque.leader_lease('t21', 'b', '1 minute') AS b_refused_after_takeover;
SELECT holder, valid FROM pgque.leader_info('t21');
-- a holder may release its expired lease, and only its own
SELECT pgque.leader_lease('t21.other', 'b', '1 millisecond') AS b_short_other;
SELECT pg_sleep(0.05);
SELECT pgque.leader_release('t21.other', 'b') AS b_releases_expired;
-- unknown leases
SELECT count(*) AS rows_unknown FROM pgque.leader_info('t21.never');
SELECT pgque.leader_release('t21.never', 'a') AS release_unknown;

-- two sessions race for a free lease: the second waits for the first's
-- uncommitted take, then is refused
SELECT dblink_connect('t21', 'dbname=' || current_database());
SELECT dblink_exec('t21', 'BEGIN');
SELECT * FROM dblink('t21', $$SELECT pgque.leader_lease('t21.race', 'other', '1 minute')$$) AS t(other_wins boolean);
SET lock_timeout = '100ms';
SELECT test.err($$SELECT pgque.leader_lease('t21.race', 'me', '1 minute')$$) AS me_waits_for_other;
RESET lock_timeout;
SELECT dblink_exec('t21', 'COMMIT');
SELECT pgque.leader_lease('t21.race', 'me', '1 minute') AS me_refused_after_commit;
SELECT dblink_disconnect('t21');
SELECT holder FROM pgque.leader_info('t21.race');

-- ranges (PQ006)
SELECT test.err($$SELECT pgque.leader_lease('t21', 'c', NULL)$$) AS ttl_null;
SELECT test.err($$SELECT pgque.leader_lease('t21', 'c', '0')$$) AS ttl_zero;
SELECT test.err($$SELECT pgque.leader_lease('t21', 'c', '-1 second')$$) AS ttl_negative;
SELECT test.err($$SELECT pgque.leader_lease('t21', 'c', '1 hour 1 second')$$) AS ttl_too_long;
SELECT pgque.leader_lease('t21', 'c', '1 hour') AS ttl_one_hour;
SELECT pgque.leader_lease('t21', 'c', '1 microsecond') AS ttl_one_microsecond;
SELECT test.err($$SELECT pgque.leader_lease(NULL, 'c', '1 second')$$) AS name_null;
SELECT test.err($$SELECT pgque.leader_lease('', 'c', '1 second')$$) AS name_empty;
SELECT test.err($$SELECT pgque.leader_lease('bad name', 'c', '1 second')$$) AS name_bad;
SELECT test.err(format('SELECT pgque.leader_lease(%L, %L, %L)', repeat('n', 64), 'c', '1 second')) AS name_too_long;
SELECT test.err($$SELECT pgque.leader_lease('t21', NULL, '1 second')$$) AS holder_null;
SELECT test.err($$SELECT pgque.leader_lease('t21', '', '1 second')$$) AS holder_empty;
SELECT test.err(format('SELECT pgque.leader_lease(%L, %L, %L)', 't21', repeat('h', 257), '1 second')) AS holder_too_long;
SELECT pgque.leader_lease('t21.long', repeat('h', 256) || '', '1 second') AS holder_256_bytes;
SELECT test.err($$SELECT pgque.leader_release('t21', NULL)$$) AS release_holder_null;
SELECT test.err($$SELECT pgque.leader_info('bad name')$$) AS info_name_bad;

-- renewals are HOT updates; refused attempts write nothing
SELECT pgque.leader_lease('t21.hot', 'a', '1 minute') AS hot_takes;
BEGIN;  -- counts of earlier statements may be pending still: take them as the base
SELECT n_tup_upd AS upd0, n_tup_hot_upd AS hot0, n_tup_ins AS ins0
  FROM pg_stat_xact_user_tables WHERE relid = 'pgque.leader'::regclass \gset
SELECT count(*) FILTER (WHERE pgque.leader_lease('t21.hot', 'a', '1 minute')) AS renewed,
       count(*) FILTER (WHERE NOT pgque.leader_lease('t21.hot', 'b', '1 minute')) AS refused
  FROM generate_series(1, 20);
SELECT n_tup_upd - :upd0 AS updates, n_tup_hot_upd - :hot0 AS hot_updates, n_tup_ins - :ins0 AS inserts
  FROM pg_stat_xact_user_tables WHERE relid = 'pgque.leader'::regclass;
COMMIT;

-- only pgque_admin may call them
CREATE ROLE t21_tenant IN ROLE pgque_tenant;
CREATE ROLE t21_rw IN ROLE pgque_reader, pgque_writer;
CREATE ROLE t21_admin IN ROLE pgque_admin;
GRANT USAGE ON SCHEMA test TO t21_tenant, t21_rw, t21_admin;  -- for test.err
SET ROLE t21_tenant;
SELECT test.err($$SELECT pgque.leader_lease('t21', 'x', '1 second')$$) AS tenant_lease;
SELECT test.err($$SELECT pgque.leader_info('t21')$$) AS tenant_info;
SET ROLE t21_rw;
SELECT test.err($$SELECT pgque.leader_release('t21', 'x')$$) AS reader_writer_release;
SET ROLE t21_admin;
SELECT pgque.leader_lease('t21.admin', 'x', '1 second') AS admin_lease;
SELECT holder FROM pgque.leader_info('t21.admin');
SELECT pgque.leader_release('t21.admin', 'x') AS admin_release;
SELECT test.err($$SELECT * FROM pgque.leader$$) AS admin_table_direct;
RESET ROLE;
REVOKE USAGE ON SCHEMA test FROM t21_tenant, t21_rw, t21_admin;
DROP ROLE t21_tenant, t21_rw, t21_admin;
DELETE FROM pgque.leader WHERE name LIKE 't21%';
