package aws_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/aws"
	"github.com/crossbus/crossbus/providers/aws/awstest"
)

// Publish to EventBridge and consume from an SQS queue that a rule feeds.
// The test server stands in for AWS; in production leave Config nil (the
// default credential chain) or open the bus by URL:
// crossbus.Open(ctx, "awseventbridge://orders?region=eu-west-1").
func ExampleNew() {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	cfg := srv.Config()

	p, err := aws.New(ctx, aws.Options{Publish: aws.EventBridge, Config: &cfg})
	if err != nil {
		panic(err)
	}
	// Development setup: a bus, and a queue fed by a rule for big orders.
	if _, err := p.ProvisionTopic(ctx, "orders", false); err != nil {
		panic(err)
	}
	pattern, _ := aws.DetailPattern(`{"data":{"amount":[{"numeric":[">",100]}]}}`)
	if _, err := p.Provision(ctx, aws.Route{Subscription: "big-orders", Topic: "orders", Pattern: pattern, MaxReceiveCount: 5}); err != nil {
		panic(err)
	}

	bus, _ := crossbus.New(p)
	defer bus.Close(ctx)
	got := make(chan string, 2)
	_, err = bus.Subscribe(ctx, "orders", "big-orders", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		got <- string(e.Data())
		return nil
	}))
	if err != nil {
		panic(err)
	}
	for _, amount := range []int{5, 250} {
		e := crossbus.NewEvent("com.example.order.placed", "/shop")
		_ = crossbus.SetData(&e, map[string]int{"amount": amount})
		if err := bus.Publish(ctx, "orders", &e); err != nil {
			panic(err)
		}
	}
	fmt.Println(<-got)
	select {
	case more := <-got:
		fmt.Println("unexpected", more)
	case <-time.After(200 * time.Millisecond):
	}
	// Output: {"amount":250}
}

// An AWS service event (here S3's "Object Created", as an EventBridge rule
// delivers it) becomes a CloudEvent by a fixed rule.
func ExampleDecodeEventBridge() {
	e, err := aws.DecodeEventBridge([]byte(`{"version":"0","id":"7d5b8f3a","detail-type":"Object Created","source":"aws.s3",
		"account":"123456789012","time":"2026-11-29T12:00:00Z","region":"eu-west-1","resources":["arn:aws:s3:::uploads"],
		"detail":{"bucket":{"name":"uploads"},"object":{"key":"cat.jpg"}}}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(e.ID(), e.Source(), e.Type(), e.Subject())
	// Output: 7d5b8f3a aws.s3 Object Created arn:aws:s3:::uploads
}
