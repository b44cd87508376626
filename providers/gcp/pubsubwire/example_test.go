package pubsubwire_test

import (
	"fmt"
	"slices"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/gcp/pubsubwire"
)

// Encode an event for the raw Pub/Sub client, and read it back.
func ExampleEncode() {
	e := crossbus.NewEvent("com.example.order.placed", "/shop")
	e.SetID("order-42")
	_ = crossbus.SetData(&e, map[string]int{"amount": 5})
	crossbus.SetPartitionKey(&e, "customer-9")

	m, mode, err := pubsubwire.Encode(&e, pubsubwire.Binary)
	if err != nil {
		panic(err)
	}
	keys := make([]string, 0, len(m.Attributes))
	for k := range m.Attributes {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	fmt.Println(mode, "mode, ordering key", m.OrderingKey)
	for _, k := range keys {
		if k != "ce-time" {
			fmt.Printf("%s: %s\n", k, m.Attributes[k])
		}
	}
	fmt.Println("data:", string(m.Data))

	back, f, _ := pubsubwire.Decode(&m, pubsubwire.Origin{})
	fmt.Println("read back", f, back.ID(), back.Type())
	// Output:
	// binary mode, ordering key customer-9
	// ce-id: order-42
	// ce-partitionkey: customer-9
	// ce-source: /shop
	// ce-specversion: 1.0
	// ce-type: com.example.order.placed
	// content-type: application/json
	// data: {"amount":5}
	// read back binary order-42 com.example.order.placed
}
