package lambda_test

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/crossbus/crossbus"
	cblambda "github.com/crossbus/crossbus/providers/aws/lambda"
	_ "github.com/crossbus/crossbus/providers/memory"
)

// Serve a route from an SQS-triggered Lambda function. In main, hand the
// handler to the runtime: lambda.Start(handler).
// Here it is called with a batch directly: the record that failed is the one
// reported back for Lambda to retry.
func ExampleSQS() {
	ctx := context.Background()
	bus, _ := crossbus.Open(ctx, "mem://")
	defer bus.Close(ctx)
	r, err := crossbus.NewRouter(bus)
	if err != nil {
		panic(err)
	}
	r.Handle("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		if e.Subject() == "declined" {
			return errors.New("card issuer unavailable")
		}
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dlq"))
	ep, err := r.Endpoint("orders", "billing")
	if err != nil {
		panic(err)
	}
	handler, err := cblambda.SQS(ep, cblambda.SQSOptions{})
	if err != nil {
		panic(err)
	}

	batch := events.SQSEvent{Records: []events.SQSMessage{
		{MessageId: "m-1", Body: `{"specversion":"1.0","id":"1","source":"/shop","type":"order","subject":"paid"}`,
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}, EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:billing"},
		{MessageId: "m-2", Body: `{"specversion":"1.0","id":"2","source":"/shop","type":"order","subject":"declined"}`,
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}, EventSourceARN: "arn:aws:sqs:eu-west-1:123456789012:billing"},
	}}
	resp, _ := handler(ctx, batch)
	fmt.Println(resp.BatchItemFailures)
	// Output: [{m-2}]
}
