package awstest_test

import (
	"context"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/crossbus/crossbus/providers/aws/awstest"
)

// Test code that uses the AWS SDK against the in-process server.
func ExampleNewServer() {
	ctx := context.Background()
	srv := awstest.NewServer(awstest.Options{})
	defer srv.Close()
	client := sqs.NewFromConfig(srv.Config()) // region, credentials and endpoint of the server

	q, err := client.CreateQueue(ctx, &sqs.CreateQueueInput{QueueName: aws.String("orders")})
	if err != nil {
		panic(err)
	}
	if _, err := client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: q.QueueUrl, MessageBody: aws.String("hello")}); err != nil {
		panic(err)
	}
	out, err := client.ReceiveMessage(ctx, &sqs.ReceiveMessageInput{QueueUrl: q.QueueUrl, WaitTimeSeconds: 1})
	if err != nil {
		panic(err)
	}
	fmt.Println(*out.Messages[0].Body)
	// Output: hello
}
