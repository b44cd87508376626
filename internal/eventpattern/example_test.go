package eventpattern_test

import (
	"errors"
	"fmt"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/crossbus/crossbus/internal/eventpattern"
)

func newOrderEvent(typ, source string, amount float64) *event.Event {
	ev := event.New()
	ev.SetID("1")
	ev.SetType(typ)
	ev.SetSource(source)
	_ = ev.SetData(event.ApplicationJSON, map[string]any{"amount": amount, "currency": "EUR"})
	return &ev
}

func ExampleCompile() {
	p, err := eventpattern.Compile([]byte(`{
		"type": ["com.example.order.created"],
		"source": [{"prefix": "/shop/"}],
		"data": {"amount": [{"numeric": [">", 100]}]}
	}`))
	if err != nil {
		panic(err)
	}
	fmt.Println(p.Match(newOrderEvent("com.example.order.created", "/shop/eu", 250)))
	fmt.Println(p.Match(newOrderEvent("com.example.order.created", "/shop/eu", 20)))

	_, err = eventpattern.Compile([]byte(`{"data": {"amount": [{"numeric": [">"]}]}}`))
	var ce *eventpattern.CompileError
	if errors.As(err, &ce) {
		fmt.Printf("path %q: %s\n", ce.Path, ce.Rule)
	}
	// Output:
	// true
	// false
	// path "data.amount": numeric expects operator/value pairs
}

func ExampleMatcher() {
	var m eventpattern.Matcher[string]
	m.Add("big-orders", eventpattern.MustCompile(`{"type":["order.created"],"data":{"amount":[{"numeric":[">=",1000]}]}}`))
	m.Add("eu-shop", eventpattern.SourcePrefix("/shop/eu"))
	m.Add("audit", eventpattern.TypePrefix("order."))

	var ids []string // reuse across events: Match does not allocate then
	ids = m.Match(newOrderEvent("order.created", "/shop/eu/42", 1500), ids[:0])
	fmt.Println(ids)
	ids = m.Match(newOrderEvent("order.shipped", "/shop/us/7", 10), ids[:0])
	fmt.Println(ids)
	// Output:
	// [big-orders eu-shop audit]
	// [audit]
}

func ExampleAnd() {
	p := eventpattern.And(
		eventpattern.TypeIs("com.example.order.created"),
		eventpattern.Field("data", "currency").Equals("EUR", "USD"),
	)
	fmt.Println(p)
	// Output:
	// {"data":{"currency":["EUR","USD"]},"type":["com.example.order.created"]}
}

func ExampleToServiceBusSQL() {
	p := eventpattern.MustCompile(`{"type":["a","b"],"source":[{"prefix":"/shop_eu/"}],"data":{"x":[1]}}`)
	sql, exact, err := eventpattern.ToServiceBusSQL(p)
	fmt.Println(sql, exact, err)
	filter, exact, err := eventpattern.ToPubSubFilter(p)
	fmt.Println(filter, exact, err)
	// Output:
	// cloudEvents_type IN ('a', 'b') AND cloudEvents_source LIKE '/shop!_eu/%' ESCAPE '!' false <nil>
	// (attributes.ce-type = "a" OR attributes.ce-type = "b") AND hasPrefix(attributes.ce-source, "/shop_eu/") false <nil>
}

func ExampleDoc() {
	ev := newOrderEvent("order.created", "/shop/eu", 5)
	var d eventpattern.Doc // reuse one Doc for many events and many patterns
	d.Reset(ev)
	fmt.Println(eventpattern.TypeIs("order.created").MatchDoc(&d), eventpattern.Field("data", "amount").Numeric("<", 10).MatchDoc(&d))
	// Output:
	// true true
}
