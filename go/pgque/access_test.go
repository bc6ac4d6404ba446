package pgque_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/pgque/pgque/go/pgque"
)

// loginPool creates a login role that is a member of roles and returns a
// pool connected as it to admin's database.
func loginPool(t *testing.T, admin *pgque.Client, name string, roles ...string) *pgxpool.Pool {
	t.Helper()
	ctx := context.Background()
	role := fmt.Sprintf("%s_%d", name, time.Now().UnixNano())
	sql := "CREATE ROLE " + role + " LOGIN"
	if len(roles) > 0 {
		sql += " IN ROLE " + roles[0]
		for _, r := range roles[1:] {
			sql += ", " + r
		}
	}
	if _, err := admin.Pool().Exec(ctx, sql); err != nil {
		t.Fatal(err)
	}
	cfg := admin.Pool().Config().Copy()
	cfg.ConnConfig.User = role
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		pool.Close()
		_, _ = admin.Pool().Exec(ctx, "DROP ROLE "+role)
	})
	return pool
}

func role(pool *pgxpool.Pool) string { return pool.Config().ConnConfig.User }

// Two tenants, each a login role with grants on its namespace, use clients
// scoped to it: each sees and uses its own queues only, by local names.
func TestNamespaces(t *testing.T) {
	ctx := context.Background()
	admin := pgque.New(srv.NewPool(t))
	acmePool := loginPool(t, admin, "acme", "pgque_tenant")
	globexPool := loginPool(t, admin, "globex", "pgque_tenant")
	for _, g := range []struct {
		pool  *pgxpool.Pool
		p     pgque.Privilege
		scope pgque.Scope
	}{
		{acmePool, pgque.PrivilegeAdmin, pgque.Scope{Namespace: "acme"}},
		{globexPool, pgque.PrivilegeAdmin, pgque.Scope{Namespace: "globex"}},
	} {
		if ok, err := admin.GrantAccess(ctx, role(g.pool), g.p, g.scope); !ok || err != nil {
			t.Fatalf("GrantAccess = %v, %v", ok, err)
		}
	}
	grants, err := admin.Access(ctx)
	if err != nil || len(grants) != 2 {
		t.Fatalf("Access = %+v, %v", grants, err)
	}

	acme, err := pgque.New(acmePool).WithNamespace("acme")
	if err != nil {
		t.Fatal(err)
	}
	globex, err := pgque.New(globexPool).WithNamespace("globex")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*pgque.Client{acme, globex} {
		if _, err := c.CreateQueue(ctx, "orders"); err != nil {
			t.Fatalf("%s: CreateQueue: %v", c.Namespace(), err)
		}
		if _, err := c.Subscribe(ctx, "orders", "billing"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := acme.Send(ctx, "orders", pgque.Event{Type: "t", Payload: "acme"}); err != nil {
		t.Fatal(err)
	}

	// Names are local to the namespace, lists hold its queues only.
	qs, err := acme.Queues(ctx)
	if err != nil || len(qs) != 1 || qs[0].Name != "orders" {
		t.Errorf("acme Queues = %+v, %v; want orders only", qs, err)
	}
	cs, err := globex.Consumers(ctx, "")
	if err != nil || len(cs) != 1 || cs[0].Queue != "orders" || cs[0].Name != "billing" {
		t.Errorf("globex Consumers = %+v, %v", cs, err)
	}
	all, err := admin.Queues(ctx)
	if err != nil || len(all) != 2 || all[0].Name != "acme.orders" || all[1].Name != "globex.orders" {
		t.Errorf("admin Queues = %+v, %v; want both, by full name", all, err)
	}

	// A Consumer of the scoped client listens on the queue's full channel.
	got := make(chan pgque.Message, 1)
	ctx2, stop := context.WithCancel(ctx)
	defer stop()
	c := acme.NewConsumer("orders", "billing", pgque.WithPollInterval(time.Hour))
	c.Handle("*", func(ctx context.Context, m pgque.Message) error { got <- m; return nil })
	done := make(chan error, 1)
	go func() { done <- c.Start(ctx2) }()
	// Ticks (by the admin: ticking every queue is not a tenant's job) until
	// the consumer, woken by the notification only, has the event.
	deadline := time.After(consumerTimeout)
	for delivered := false; !delivered; {
		if _, err := admin.ForceTick(ctx, "acme.orders"); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-got:
			if string(m.Payload) != `"acme"` {
				t.Errorf("payload %s", m.Payload)
			}
			delivered = true
		case <-time.After(100 * time.Millisecond):
		case <-deadline:
			t.Fatal("the consumer of the scoped client got nothing")
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Another tenant's queues: permission denied, whether they exist or not.
	unscopedAcme := pgque.New(acmePool)
	for name, err := range map[string]error{
		"send":          func() error { _, err := unscopedAcme.Send(ctx, "globex.orders", pgque.Event{Type: "t"}); return err }(),
		"send missing":  func() error { _, err := unscopedAcme.Send(ctx, "globex.nope", pgque.Event{Type: "t"}); return err }(),
		"receive":       func() error { _, err := unscopedAcme.Receive(ctx, "globex.orders", "billing", 10); return err }(),
		"create global": func() error { _, err := unscopedAcme.CreateQueue(ctx, "plain"); return err }(),
		"tick all":      func() error { _, err := unscopedAcme.Tick(ctx); return err }(),
	} {
		if !errors.Is(err, pgque.ErrPermissionDenied) {
			t.Errorf("acme %s: %v, want ErrPermissionDenied", name, err)
		}
	}
	spy, err := pgque.New(acmePool).WithNamespace("globex")
	if err != nil {
		t.Fatal(err)
	}
	if qs, err := spy.Queues(ctx); err != nil || len(qs) != 0 {
		t.Errorf("acme listing globex: %+v, %v; want nothing", qs, err)
	}

	// Revoked, acme can do nothing to its own namespace either.
	if ok, err := admin.RevokeAccess(ctx, role(acmePool), pgque.PrivilegeAdmin, pgque.Scope{Namespace: "acme"}); !ok || err != nil {
		t.Fatalf("RevokeAccess = %v, %v", ok, err)
	}
	if _, err := acme.Send(ctx, "orders", pgque.Event{Type: "t"}); !errors.Is(err, pgque.ErrPermissionDenied) {
		t.Errorf("send after revoke: %v", err)
	}

	for _, ns := range []string{"", "a.b", "bad name", "-x"} {
		if _, err := admin.WithNamespace(ns); !errors.Is(err, pgque.ErrInvalidArgument) {
			t.Errorf("WithNamespace(%q): %v, want ErrInvalidArgument", ns, err)
		}
	}
	if _, err := admin.GrantAccess(ctx, role(acmePool), "write", pgque.Scope{Namespace: "acme"}); !errors.Is(err, pgque.ErrInvalidArgument) {
		t.Errorf("bad privilege: %v", err)
	}
	if _, err := pgque.New(globexPool).GrantAccess(ctx, role(globexPool), pgque.PrivilegeAdmin, pgque.Scope{Namespace: "acme"}); !errors.Is(err, pgque.ErrPermissionDenied) {
		t.Errorf("a tenant granting itself: %v", err)
	}
}
