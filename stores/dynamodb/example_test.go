package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/dynamodb"
)

// A payment ledger event-sourced in DynamoDB: each account is a stream,
// and a withdrawal is appended only if no one changed the account since
// its balance was read (optimistic concurrency). (Compiled only: it needs
// DynamoDB, or dynalite at an endpoint.)
func ExampleNewEventStore() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		panic(err)
	}
	client := ddb.NewFromConfig(cfg)
	tables := dynamodb.DefaultTables("ledger")
	if err := dynamodb.CreateTables(ctx, client, dynamodb.CreateTablesOptions{Tables: dynamodb.Tables{Events: tables.Events}}); err != nil {
		panic(err)
	}
	events, err := dynamodb.NewEventStore(ctx, client, tables.Events)
	if err != nil {
		panic(err)
	}

	// Read the account, decide, append at the version read.
	balance, version := 0, uint64(0)
	for rec, err := range events.ReadStream(ctx, "account-42", 1) {
		if err != nil {
			panic(err)
		}
		var p struct{ Amount int }
		_ = rec.Event.DataAs(&p)
		if rec.Event.Type() == "ledger.deposited" {
			balance += p.Amount
		} else {
			balance -= p.Amount
		}
		version = rec.Version
	}
	if balance < 30 {
		fmt.Println("insufficient funds")
		return
	}
	w := crossbus.NewEvent("ledger.withdrawn", "/ledger")
	_ = crossbus.SetData(&w, map[string]int{"amount": 30})
	_, err = events.Append(ctx, "account-42", sourcing.Exactly(version), &w)
	if errors.Is(err, sourcing.ErrConflict) {
		fmt.Println("the account changed meanwhile: read it again and decide again")
	}
}

// The idempotency store for routes whose consumers run on many machines.
func ExampleNewIdempotencyStore() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		panic(err)
	}
	client := ddb.NewFromConfig(cfg)
	tables := dynamodb.Tables{Idempotency: "shop-idempotency"}
	// Creates the table and turns on DynamoDB's time to live for its ttl
	// attribute, which deletes expired records.
	if err := dynamodb.CreateTables(ctx, client, dynamodb.CreateTablesOptions{Tables: tables}); err != nil {
		panic(err)
	}
	idem, err := dynamodb.NewIdempotencyStore(ctx, client, tables.Idempotency)
	if err != nil {
		panic(err)
	}
	route := crossbus.WithIdempotency(idem, crossbus.IdempotencyOptions{TTL: 7 * 24 * time.Hour})
	_ = route // router.Handle("orders", "billing", handler, route)
}
