package servicebus_test

import (
	"context"
	"fmt"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/sbtest"
	"github.com/crossbus/crossbus/providers/azure/servicebus"
)

// Publish to a topic and handle the event from a subscription. The broker
// here is sbtest; against Azure, pass your namespace's connection string (or
// open "azuresb://NAME.servicebus.windows.net" with crossbus.Open).
func Example() {
	srv, _ := sbtest.NewServer(sbtest.Options{})
	defer srv.Close()
	_ = srv.CreateTopic("orders", sbtest.EntityOptions{})
	_ = srv.CreateSubscription("orders", "billing", sbtest.EntityOptions{})

	ctx := context.Background()
	p, err := servicebus.New(ctx, servicebus.Options{ConnectionString: srv.ConnectionString()})
	if err != nil {
		panic(err)
	}
	bus, _ := crossbus.New(p)
	defer bus.Close(ctx)

	handled := make(chan string, 1)
	_, err = bus.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(_ context.Context, ev *crossbus.Event) error {
		handled <- ev.Type() + " " + string(ev.Data())
		return nil
	}))
	if err != nil {
		panic(err)
	}
	ev := crossbus.NewEvent("com.example.order.placed", "/shop")
	_ = crossbus.SetData(&ev, map[string]int{"order": 42})
	if err := bus.Publish(ctx, "orders", &ev); err != nil {
		panic(err)
	}
	fmt.Println(<-handled)
	// Output: com.example.order.placed {"order":42}
}

// Schedule an event to appear on a topic later.
func ExampleProvider_Schedule() {
	srv, _ := sbtest.NewServer(sbtest.Options{})
	defer srv.Close()
	_ = srv.CreateQueue("reminders", sbtest.EntityOptions{})

	ctx := context.Background()
	p, _ := servicebus.New(ctx, servicebus.Options{ConnectionString: srv.ConnectionString(), Queues: []string{"reminders"}})
	defer p.Close(ctx)
	ev := crossbus.NewEvent("com.example.reminder.due", "/calendar")
	seqs, err := p.Schedule(ctx, "reminders", time.Now().Add(time.Hour), &ev)
	if err != nil {
		panic(err)
	}
	c, _ := srv.Counts("reminders")
	fmt.Println(len(seqs), "scheduled;", c.Scheduled, "waiting on the queue")
	_ = p.CancelScheduled(ctx, "reminders", seqs...)
	c, _ = srv.Counts("reminders")
	fmt.Println(c.Scheduled, "after cancelling")
	// Output:
	// 1 scheduled; 1 waiting on the queue
	// 0 after cancelling
}
