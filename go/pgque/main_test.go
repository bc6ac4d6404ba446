package pgque_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/pgque/pgque/go/pgque"
	"github.com/pgque/pgque/go/pgque/pgquetest"
)

// srv is the throwaway server shared by this package's tests; each test gets
// a database of its own.
var srv *pgquetest.Server

func TestMain(m *testing.M) {
	var err error
	srv, err = pgquetest.Start(context.Background())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	code := m.Run()
	srv.Cleanup()
	os.Exit(code)
}

// newClient returns a client on a fresh database with queue q and consumer
// "c" subscribed to it.
func newClient(t *testing.T, q string, consumers ...string) *pgque.Client {
	t.Helper()
	ctx := context.Background()
	client := pgque.New(srv.NewPool(t))
	if _, err := client.CreateQueue(ctx, q); err != nil {
		t.Fatal(err)
	}
	for _, c := range consumers {
		if _, err := client.Subscribe(ctx, q, c); err != nil {
			t.Fatal(err)
		}
	}
	return client
}
