package functions_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/providers/azure/eventgrid/functions"
	"github.com/crossbus/crossbus/providers/memory"
)

// A custom handler with a Service Bus triggered function named Billing,
// whose function.json binds the trigger as "message". The Functions host
// invokes it over the loopback interface, and the handler accepts loopback
// callers only. In a Function App the main function ends with
//
//	log.Fatal(http.ListenAndServe(functions.ListenAddress(), h)) // 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT
func ExampleHandler() {
	ctx := context.Background()
	bus, _ := crossbus.New(memory.New(memory.Options{AutoCreate: true}))
	defer bus.Close(ctx)
	ep, err := bus.NewEndpoint("orders", "billing", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		fmt.Printf("billing %s %s (attempt %d)\n", e.Type(), e.Data(), info.Attempt)
		return nil
	}), crossbus.WithDeadLetterTopic("orders-dead"))
	if err != nil {
		panic(err)
	}
	h, err := functions.NewHandler(functions.Options{Auth: functions.LoopbackOnly{}})
	if err != nil {
		panic(err)
	}
	if err := h.Register(functions.Function{Name: "Billing", Trigger: functions.ServiceBus, Binding: "message", Endpoint: ep}); err != nil {
		panic(err)
	}
	srv := httptest.NewServer(h) // on 127.0.0.1, as the host's invocations arrive
	defer srv.Close()

	// What the Functions host posts for a message a crossbus publisher sent.
	invocation := `{"Data":{"message":"{\"orderId\":42}"},"Metadata":{"DeliveryCount":1,"ContentType":"application/json",
	  "ApplicationProperties":{"cloudEvents_specversion":"1.0","cloudEvents_id":"ev-1","cloudEvents_source":"/shop","cloudEvents_type":"com.example.order.placed"}}}`
	resp, err := http.Post(srv.URL+"/Billing", "application/json", strings.NewReader(invocation))
	if err != nil {
		panic(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	fmt.Println(resp.StatusCode, strings.TrimSpace(string(body)))
	// Output:
	// billing com.example.order.placed {"orderId":42} (attempt 1)
	// 200 {"Outputs":{},"Logs":["crossbus: event \"ev-1\" (com.example.order.placed) attempt 1: acked"],"ReturnValue":null}
}
