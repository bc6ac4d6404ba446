package pgque_test

import (
	"context"
	"fmt"
	"log"

	"github.com/pgque/pgque/go/pgque"
)

// A service for several tenants keeps one pool and a client scoped to each
// tenant's namespace; in production each tenant connects with a login role
// of its own that was granted its namespace (GrantAccess).
func ExampleClient_WithNamespace() {
	ctx := context.Background()
	client, err := pgque.Connect(ctx, consumerExampleDSN())
	if err != nil {
		log.Fatal(err)
	}
	defer client.Close()

	for _, tenant := range []string{"acme", "globex"} {
		tc, err := client.WithNamespace(tenant)
		if err != nil {
			log.Fatal(err)
		}
		if _, err := tc.CreateQueue(ctx, "orders"); err != nil { // the queue "<tenant>.orders"
			log.Fatal(err)
		}
	}
	acme, err := client.WithNamespace("acme")
	if err != nil {
		log.Fatal(err)
	}
	qs, err := acme.Queues(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, q := range qs {
		fmt.Println("acme sees:", q.Name)
	}
	all, err := client.Queues(ctx)
	if err != nil {
		log.Fatal(err)
	}
	for _, q := range all {
		fmt.Println("unscoped:", q.Name)
	}
	// Output:
	// acme sees: orders
	// unscoped: acme.orders
	// unscoped: globex.orders
}
