package pgque_test

import (
	"context"
	"database/sql"
	"fmt"
	"log"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgque/pgque/go/pgque"
)

// Create a queue and set it up in one transaction: all of it, or nothing.
func ExampleClient_CreateQueueTx() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	err := pgx.BeginFunc(ctx, client.Pool(), func(tx pgx.Tx) error {
		if _, err := client.CreateQueueTx(ctx, tx, "invoices"); err != nil {
			return err
		}
		if err := client.SetQueueConfigTx(ctx, tx, "invoices", "max_retries", "3"); err != nil {
			return err
		}
		_, err := client.SubscribeTx(ctx, tx, "invoices", "mailer")
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
	q, err := client.Queue(ctx, "invoices")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(q.Name, q.MaxRetries, q.Consumers)
	// Output:
	// invoices 3 1
}

// Send from code built on database/sql: the event commits with the
// transaction's own writes, or not at all.
func ExampleSQLTx() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	db, err := sql.Open("pgx", client.Pool().Config().ConnString()) // pgx's driver: github.com/jackc/pgx/v5/stdlib
	if err != nil {
		log.Fatal(err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		log.Fatal(err)
	}
	defer tx.Rollback() //nolint:errcheck
	if _, err := tx.ExecContext(ctx, `CREATE TABLE invoice (id int PRIMARY KEY)`); err != nil {
		log.Fatal(err)
	}
	if _, err := tx.ExecContext(ctx, `INSERT INTO invoice VALUES (1)`); err != nil {
		log.Fatal(err)
	}
	if _, err := client.SendTx(ctx, pgque.SQLTx(tx), "orders", pgque.Event{Type: "invoice.created", Payload: map[string]int{"id": 1}}); err != nil {
		log.Fatal(err)
	}
	if err := tx.Commit(); err != nil {
		log.Fatal(err)
	}
	evs, err := client.FindEvents(ctx, "orders", pgque.FindOptions{Type: "invoice.created"})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(evs), evs[0].Payload)
	// Output:
	// 1 {"id":1}
}

// Wait for a queue's ticks in your own loop, on the client's one shared
// listening connection, polling as a fallback.
func ExampleClient_Listen() {
	ctx := context.Background()
	client := exampleClient(ctx)
	defer client.Close()

	ticks, stop := client.Listen("orders")
	defer stop()
	<-ticks // the first comes once the connection listens: ticks may have been missed before
	if _, err := client.Send(ctx, "orders", pgque.Event{Type: "order.created", Payload: 1}); err != nil {
		log.Fatal(err)
	}
	if _, err := client.ForceTick(ctx, "orders"); err != nil {
		log.Fatal(err)
	}
	select {
	case <-ticks:
		fmt.Println("ticked")
	case <-time.After(time.Second): // the poll interval of your loop
		fmt.Println("no notification: poll")
	}
	// Output:
	// ticked
}
