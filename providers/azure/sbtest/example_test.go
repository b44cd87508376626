package sbtest_test

import (
	"context"
	"fmt"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/azservicebus"

	"github.com/crossbus/crossbus/providers/azure/sbtest"
)

// Run the Service Bus SDK against an in-process broker.
func ExampleNewServer() {
	srv, err := sbtest.NewServer(sbtest.Options{})
	if err != nil {
		panic(err)
	}
	defer srv.Close()
	_ = srv.CreateQueue("orders", sbtest.EntityOptions{LockDuration: 5 * time.Second})

	ctx := context.Background()
	client, _ := azservicebus.NewClientFromConnectionString(srv.ConnectionString(), nil)
	defer client.Close(ctx)
	sender, _ := client.NewSender("orders", nil)
	_ = sender.SendMessage(ctx, &azservicebus.Message{Body: []byte("order 42")}, nil)

	receiver, _ := client.NewReceiverForQueue("orders", nil)
	msgs, _ := receiver.ReceiveMessages(ctx, 1, nil)
	_ = receiver.CompleteMessage(ctx, msgs[0], nil)
	fmt.Println(string(msgs[0].Body), "delivery", msgs[0].DeliveryCount)
	// Output: order 42 delivery 1
}
