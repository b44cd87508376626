package kafka_test

import (
	"context"
	"fmt"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/crossbus/crossbus"
	_ "github.com/crossbus/crossbus/providers/kafka"
)

// Open a bus on Kafka (here an in-process test cluster): topics and consumer
// groups are created on first use, events travel as CloudEvents with ce_
// headers, and offsets are committed only past events that were handled.
func Example() {
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	ctx := context.Background()
	bus, err := crossbus.Open(ctx, "kafka://"+cluster.ListenAddrs()[0])
	if err != nil {
		panic(err)
	}
	defer bus.Close(ctx)

	done := make(chan struct{})
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		fmt.Println("billing", e.Type(), "for", crossbus.PartitionKey(e))
		close(done)
		return nil
	}), crossbus.WithOrdering())
	if err != nil {
		panic(err)
	}
	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	crossbus.SetPartitionKey(&e, "customer-9") // the record key: one partition, in order
	if err := bus.Publish(ctx, "orders", &e); err != nil {
		panic(err)
	}
	<-done
	// Output: billing com.example.order.placed for customer-9
}
