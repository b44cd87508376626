package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
)

// Scenario 2, chaining: an order runs payment -> inventory -> shipping ->
// confirmation email as a chain. Each step is a worker handler reached
// through the bus; the coordinator keeps the state in the sqlite file.

// PlacedOrder is the chain's input.
type PlacedOrder struct {
	ID          string `json:"id"`
	Item        string `json:"item"`
	Quantity    int    `json:"quantity"`
	PriceCents  int    `json:"priceCents"`
	Destination string `json:"destination"`
	Email       string `json:"email"`
}

// OrdersResult is what scenario 2 ended with.
type OrdersResult struct {
	Status   map[string]chain.Status
	Errors   map[string]string
	Stock    map[string]int
	Charged  map[string]int // order -> cents charged and not refunded
	Refunded []string
	Emails   []string
	// Runs counts step executions per "order/step".
	Runs map[string]int
	// DuplicateCommands is how many step commands were injected twice.
	DuplicateCommands int
}

// shop is the business state the steps change.
type shop struct {
	mu       sync.Mutex
	stock    map[string]int
	charged  map[string]int
	refunded []string
	emails   []string
	runs     map[string]int
	flaky    map[string]bool // orders whose first payment attempt times out
}

func (s *shop) ran(order, step string) {
	s.mu.Lock()
	s.runs[order+"/"+step]++
	s.mu.Unlock()
}

// duplicating publishes the commands of chosen orders twice.
type duplicating struct {
	chain.Bus
	orders map[string]bool
	mu     sync.Mutex
	count  int
}

func (d *duplicating) Publish(ctx context.Context, topic string, events ...*crossbus.Event) error {
	if err := d.Bus.Publish(ctx, topic, events...); err != nil {
		return err
	}
	for _, e := range events {
		if e.Type() == chain.CommandType && d.orders[crossbus.ExtensionString(e, chain.ExtInstance)] {
			d.mu.Lock()
			d.count++
			d.mu.Unlock()
			if err := d.Bus.Publish(ctx, topic, e); err != nil {
				return err
			}
		}
	}
	return nil
}

func orderChain() *chain.Definition {
	quick := chain.RetryPolicy{MaxAttempts: 3, InitialInterval: 10 * time.Millisecond, BackoffRate: 2, MaxDelay: 100 * time.Millisecond}
	ship := quick
	ship.NonRetryable = []string{"shipping.NoRoute"}
	return &chain.Definition{
		Name:    "order",
		Timeout: 30 * time.Second,
		Steps: []chain.Step{
			{Name: "payment", Retry: quick, AttemptTimeout: 5 * time.Second},
			{Name: "inventory", Retry: quick, AttemptTimeout: 5 * time.Second},
			{Name: "shipping", Retry: ship, AttemptTimeout: 5 * time.Second},
			{Name: "email", Retry: quick, AttemptTimeout: 5 * time.Second},
		},
	}
}

func (a *app) orderHandlers(s *shop) map[string]chain.Handler {
	tr := a.trace
	order := func(in *chain.Input) (PlacedOrder, error) {
		var o PlacedOrder
		err := in.Decode(&o)
		return o, err
	}
	return map[string]chain.Handler{
		"payment": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o, err := order(in)
				if err != nil {
					return nil, err
				}
				s.ran(o.ID, "payment")
				s.mu.Lock()
				flaky := s.flaky[o.ID] && in.Attempt == 1
				s.mu.Unlock()
				if flaky {
					tr.log("payment", "%s attempt %d: card gateway timed out", o.ID, in.Attempt)
					return nil, chain.Fail("payment.GatewayTimeout", errors.New("card gateway timed out"))
				}
				cents := o.PriceCents * o.Quantity
				s.mu.Lock()
				s.charged[o.ID] += cents
				s.mu.Unlock()
				tr.log("payment", "%s attempt %d: charged %s", o.ID, in.Attempt, euros(cents))
				return map[string]any{"charge": "ch_" + o.ID, "cents": cents}, nil
			},
			Undo: func(ctx context.Context, in *chain.Input) error {
				o, err := order(in)
				if err != nil {
					return err
				}
				var pay struct {
					Charge string `json:"charge"`
					Cents  int    `json:"cents"`
				}
				if err := in.Output("payment", &pay); err != nil {
					return err
				}
				s.mu.Lock()
				s.charged[o.ID] -= pay.Cents
				s.refunded = append(s.refunded, o.ID)
				s.mu.Unlock()
				tr.log("payment", "%s compensation: refunded %s (charge %s)", o.ID, euros(pay.Cents), pay.Charge)
				return nil
			},
		},
		"inventory": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o, err := order(in)
				if err != nil {
					return nil, err
				}
				s.ran(o.ID, "inventory")
				s.mu.Lock()
				defer s.mu.Unlock()
				if s.stock[o.Item] < o.Quantity {
					return nil, chain.Fail("inventory.OutOfStock", fmt.Errorf("%d x %s wanted, %d in stock", o.Quantity, o.Item, s.stock[o.Item]))
				}
				s.stock[o.Item] -= o.Quantity
				tr.log("inventory", "%s: reserved %d x %s (%d left)", o.ID, o.Quantity, o.Item, s.stock[o.Item])
				return "res_" + o.ID, nil
			},
			Undo: func(ctx context.Context, in *chain.Input) error {
				o, err := order(in)
				if err != nil {
					return err
				}
				s.mu.Lock()
				s.stock[o.Item] += o.Quantity
				left := s.stock[o.Item]
				s.mu.Unlock()
				tr.log("inventory", "%s compensation: restocked %d x %s (%d left)", o.ID, o.Quantity, o.Item, left)
				return nil
			},
		},
		"shipping": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o, err := order(in)
				if err != nil {
					return nil, err
				}
				s.ran(o.ID, "shipping")
				if o.Destination == "Atlantis" {
					tr.log("shipping", "%s: no carrier delivers to %s", o.ID, o.Destination)
					return nil, chain.Fail("shipping.NoRoute", fmt.Errorf("no carrier delivers to %s", o.Destination))
				}
				label := fmt.Sprintf("DHL-%s-%s", o.Destination[:3], o.ID)
				tr.log("shipping", "%s: label %s to %s", o.ID, label, o.Destination)
				return label, nil
			},
		},
		"email": {
			Do: func(ctx context.Context, in *chain.Input) (any, error) {
				o, err := order(in)
				if err != nil {
					return nil, err
				}
				s.ran(o.ID, "email")
				var label string
				if err := in.Output("shipping", &label); err != nil {
					return nil, err
				}
				s.mu.Lock()
				s.emails = append(s.emails, o.ID)
				s.mu.Unlock()
				tr.log("email", "%s: confirmation to %s, tracking %s", o.ID, o.Email, label)
				return nil, nil
			},
		},
	}
}

func (a *app) orders(ctx context.Context) (OrdersResult, error) {
	tr := a.trace
	tr.title("2. Chaining: order placed -> payment -> inventory -> shipping -> confirmation email")
	def := orderChain()
	s := &shop{stock: map[string]int{"lamp": 10, "chair": 4, "desk": 2}, charged: map[string]int{}, runs: map[string]int{},
		flaky: map[string]bool{}}
	bus := &duplicating{Bus: a.bus, orders: map[string]bool{}}
	worker, err := chain.NewWorker(def, bus, a.db.Chains(), a.orderHandlers(s), chain.WorkerOptions{})
	if err != nil {
		return OrdersResult{}, err
	}
	if err := worker.Start(ctx); err != nil {
		return OrdersResult{}, err
	}
	defer worker.Close(context.Background())
	coord, err := chain.NewCoordinator(def, bus, a.db.Chains(), chain.CoordinatorOptions{
		OnChange: func(inst *chain.Instance) {
			switch {
			case inst.Status.Finished():
				tr.log("chain", "%s: %s after %v", inst.ID, inst.Status, inst.Completed)
			case inst.Phase == chain.PhaseWaiting:
				tr.log("chain", "%s: %s attempt %d failed; attempt %d at +%v", inst.ID, inst.Step, inst.Attempt-1, inst.Attempt,
					time.Until(inst.Due).Round(time.Millisecond))
			case inst.Status == chain.StatusCompensating:
				tr.log("chain", "%s: compensating %s (undo %d of %d)", inst.ID, inst.Step, len(inst.Completed)-inst.Undo, len(inst.Completed))
			default:
				tr.log("chain", "%s: -> %s", inst.ID, inst.Step)
			}
		},
	})
	if err != nil {
		return OrdersResult{}, err
	}
	if err := coord.Start(ctx); err != nil {
		return OrdersResult{}, err
	}
	defer coord.Close(context.Background())

	// Order ids are chain instance ids: a database reused from an earlier
	// run already has these orders, so this run's get a suffix.
	suffix := ""
	if _, err := a.db.Chains().Load(ctx, "o-1001"); err == nil {
		suffix = fmt.Sprintf("-%d", time.Now().Unix()%100000)
	}
	placed := []PlacedOrder{
		{ID: "o-1001" + suffix, Item: "lamp", Quantity: 2, PriceCents: 2990, Destination: "Berlin", Email: "ada@example.com"},
		{ID: "o-1002" + suffix, Item: "chair", Quantity: 1, PriceCents: 8900, Destination: "Atlantis", Email: "nemo@example.com"},
		{ID: "o-1003" + suffix, Item: "desk", Quantity: 1, PriceCents: 24900, Destination: "Lisbon", Email: "rui@example.com"},
	}
	s.flaky[placed[2].ID] = true
	bus.orders[placed[0].ID] = true
	tr.log("chain", "%s's step commands are each published twice (injected duplicates)", placed[0].ID)
	for _, o := range placed {
		tr.log("shop", "order placed: %s, %d x %s, %s, to %s", o.ID, o.Quantity, o.Item, euros(o.PriceCents*o.Quantity), o.Destination)
		if _, err := coord.Begin(ctx, o.ID, o); err != nil {
			return OrdersResult{}, err
		}
	}
	res := OrdersResult{Status: map[string]chain.Status{}, Errors: map[string]string{}}
	for _, o := range placed {
		inst, err := coord.Wait(ctx, o.ID)
		if err != nil {
			return res, fmt.Errorf("order %s: %w", o.ID, err)
		}
		res.Status[o.ID] = inst.Status
		if err := inst.Err(); err != nil {
			res.Errors[o.ID] = err.Error()
		}
	}
	// Let the injected duplicates drain before reading the counters: a
	// duplicate that arrived while its original ran is redelivered after
	// a short delay and then skipped.
	for _, st := range def.Steps {
		topic := def.StepTopic(st)
		if err := a.drain(ctx, topic, topic+"-worker"); err != nil {
			return res, err
		}
	}
	if err := worker.Close(ctx); err != nil {
		return res, err
	}
	s.mu.Lock()
	res.Stock, res.Charged, res.Runs = s.stock, s.charged, s.runs
	res.Refunded, res.Emails = s.refunded, s.emails
	s.mu.Unlock()
	bus.mu.Lock()
	res.DuplicateCommands = bus.count
	bus.mu.Unlock()

	rows := [][2]string{}
	for _, o := range placed {
		inst, err := coord.Get(ctx, o.ID)
		if err != nil {
			return res, err
		}
		line := fmt.Sprintf("%-20s completed %v", inst.Status, inst.Completed)
		if len(inst.Errors) > 0 {
			line += fmt.Sprintf("; %s", inst.Errors[0].Class)
		}
		rows = append(rows, [2]string{o.ID, line})
	}
	var runs []string
	for _, st := range []string{"payment", "inventory", "shipping", "email"} {
		runs = append(runs, fmt.Sprintf("%s=%d", st, res.Runs[placed[0].ID+"/"+st]))
	}
	keys := make([]string, 0, len(res.Stock))
	for k := range res.Stock {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var stock []string
	for _, k := range keys {
		stock = append(stock, fmt.Sprintf("%s=%d", k, res.Stock[k]))
	}
	rows = append(rows,
		[2]string{placed[0].ID + " step runs", fmt.Sprintf("%v (each once, though %d commands were published twice)", runs, res.DuplicateCommands)},
		[2]string{"stock", fmt.Sprint(stock)},
		[2]string{"refunded", fmt.Sprint(res.Refunded)})
	tr.table(rows)
	return res, nil
}

func euros(cents int) string { return fmt.Sprintf("€%d.%02d", cents/100, cents%100) }

// drain waits until a subscription holds no event: none waiting, leased or
// delayed for redelivery. Only the memory provider tells; on another bus a
// duplicate still due for redelivery is skipped when it comes, by this run
// or the next (the idempotency records are in the database).
func (a *app) drain(ctx context.Context, topic, sub string) error {
	if a.mem == nil {
		return nil
	}
	for {
		st, err := a.mem.Stats(topic, sub)
		if err != nil || st.Waiting+st.InFlight+st.Delayed == 0 {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("subscription %s still holds %d events: %w", sub, st.Waiting+st.InFlight+st.Delayed, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
}
