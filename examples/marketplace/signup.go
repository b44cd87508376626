package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
	"github.com/crossbus/crossbus/patterns/fanout"
)

// Scenario 3, fan-out: every sign-up goes to four independent subscribers,
// each with its own subscription, retry policy and dead-letter queue.

const signupTopic = "user-signedup"

// Signup is the data of a user.signedup event.
type Signup struct {
	User  string `json:"user"`
	Email string `json:"email"`
	Phone string `json:"phone"`
}

// SignupResult is what scenario 3 ended with.
type SignupResult struct {
	// Handled lists, per subscriber, the users it handled successfully
	// (sorted), and Runs how often its handler ran per user.
	Handled map[string][]string
	Runs    map[string]map[string]int
	Stats   map[string]fanout.Stats
	// DeadLetters are the events in each subscriber's dead-letter queue.
	DeadLetters map[string][]DeadLetter
}

// DeadLetter is a dead-lettered event as the demo reports it.
type DeadLetter struct {
	ID       string
	Reason   string
	Attempts int
}

type signupLog struct {
	mu      sync.Mutex
	runs    map[string]map[string]int
	handled map[string]map[string]bool
}

func (l *signupLog) ran(sub, user string, ok bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.runs[sub] == nil {
		l.runs[sub], l.handled[sub] = map[string]int{}, map[string]bool{}
	}
	l.runs[sub][user]++
	if ok {
		l.handled[sub][user] = true
	}
}

func (a *app) signups(ctx context.Context) (SignupResult, error) {
	tr := a.trace
	tr.title("3. Fan-out: user signed up -> SMS, email, marketing, analytics")
	log := &signupLog{runs: map[string]map[string]int{}, handled: map[string]map[string]bool{}}
	// On a durable bus, the subscribers may also get sign-ups of an earlier
	// run, redriven or replayed since: they are handled like the others,
	// but this run waits for its own and counts only those.
	var wg sync.WaitGroup // one Done per successful handling or dead letter of this run's sign-ups
	mine := map[string]bool{}
	ours := func(e *crossbus.Event) bool { return mine[e.ID()] } // mine is filled before the first publish
	done := func(e *crossbus.Event) {
		if ours(e) {
			wg.Done()
		}
	}
	earlier := func(e *crossbus.Event) string {
		if ours(e) {
			return ""
		}
		return " (a sign-up of an earlier run, " + cmp.Or(redrivenOrReplayed(e), "delivered again") + ")"
	}
	ran := func(sub, user string, e *crossbus.Event, ok bool) {
		if ours(e) {
			log.ran(sub, user, ok)
		}
	}
	sms := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, s Signup) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		switch {
		case strings.HasPrefix(s.Phone, "+999"):
			ran("sms", s.User, e, false)
			tr.log("sms", "%s attempt %d/%d: carrier gateway timeout for %s%s", s.User, info.Attempt, info.MaxAttempts, s.Phone, earlier(e))
			if info.Attempt == info.MaxAttempts {
				defer done(e) // goes to the dead-letter queue now
			}
			return fmt.Errorf("carrier gateway timeout for %s", s.Phone)
		case info.Attempt == 1:
			ran("sms", s.User, e, false)
			tr.log("sms", "%s attempt 1: 503 from the SMS provider, will retry%s", s.User, earlier(e))
			return errors.New("sms provider: 503 service unavailable")
		}
		ran("sms", s.User, e, true)
		tr.log("sms", "%s attempt %d: welcome text sent to %s%s", s.User, info.Attempt, s.Phone, earlier(e))
		done(e)
		return nil
	})
	simple := func(name, what string) crossbus.Handler {
		return crossbus.Typed(func(ctx context.Context, e *crossbus.Event, s Signup) error {
			ran(name, s.User, e, true)
			tr.log(name, "%s: %s%s", s.User, what, earlier(e))
			done(e)
			return nil
		})
	}
	idem := crossbus.WithIdempotency(a.db.Idempotency(), crossbus.IdempotencyOptions{})
	smsRetry := crossbus.RetryPolicy{MaxAttempts: 3, InitialBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond, Multiplier: 2}
	f, err := fanout.New(signupTopic,
		fanout.Subscriber{Name: "sms", Handler: sms, Retry: fanout.Retry(smsRetry), Concurrency: 2, DeadLetterTopic: "sms-deadletter",
			Options: []crossbus.RouteOption{idem}},
		fanout.Subscriber{Name: "email", Handler: simple("email", "welcome email sent"), Retry: fanout.Retry(quickRetry(5)), Concurrency: 4,
			Options: []crossbus.RouteOption{idem}},
		fanout.Subscriber{Name: "marketing", Handler: simple("marketing", "added to the newsletter audience"), Retry: fanout.Retry(quickRetry(10)),
			Options: []crossbus.RouteOption{idem}},
		fanout.Subscriber{Name: "analytics", Handler: simple("analytics", "sign-up counted"), Concurrency: 1,
			Options: []crossbus.RouteOption{idem}},
	)
	if err != nil {
		return SignupResult{}, err
	}
	users := []Signup{
		{User: "u-1", Email: "ada@example.com", Phone: "+4915100000001"},
		{User: "u-2", Email: "grace@example.com", Phone: "+4915100000002"},
		{User: "u-3", Email: "linus@example.com", Phone: "+99900000003"},
		{User: "u-4", Email: "barbara@example.com", Phone: "+4915100000004"},
	}
	events := make([]*crossbus.Event, len(users))
	for i, u := range users {
		e := crossbus.NewEvent("com.example.marketplace.user.signedup", "/marketplace/accounts")
		e.SetSubject(u.User)
		if err := crossbus.SetData(&e, u); err != nil {
			return SignupResult{}, err
		}
		events[i] = &e
		mine[e.ID()] = true
	}
	// The subscribers run on a router, whose topology can be written out
	// for the crossbus command (crossbus topology --file).
	router, err := crossbus.NewRouter(a.bus)
	if err != nil {
		return SignupResult{}, err
	}
	if err := f.Mount(router); err != nil {
		return SignupResult{}, err
	}
	if a.cfg.Topology != "" {
		if err := writeTopology(a.cfg.Topology, router); err != nil {
			return SignupResult{}, err
		}
		tr.log("router", "topology of the fan-out written to %s", a.cfg.Topology)
	}
	rctx, stop := context.WithCancel(ctx)
	defer stop()
	stopped := make(chan error, 1)
	go func() { stopped <- router.Run(rctx) }()
	<-router.Ready()
	if err := router.Err(); err != nil {
		return SignupResult{}, err
	}
	wg.Add(4 * len(users))
	tr.log("bus", "publish %d sign-ups to %s (4 subscribers)", len(users), signupTopic)
	if err := f.Publish(ctx, a.bus, events...); err != nil {
		return SignupResult{}, err
	}
	tr.log("bus", "inject a duplicate: publish u-2's sign-up again (event %s)", events[1].ID())
	if err := f.Publish(ctx, a.bus, events[1]); err != nil {
		return SignupResult{}, err
	}
	if err := waitGroup(ctx, &wg); err != nil {
		return SignupResult{}, err
	}
	// The duplicate is skipped by each subscriber's idempotency check; stop
	// the router (it drains) before reading the counters.
	stop()
	if err := <-stopped; err != nil {
		return SignupResult{}, err
	}

	res := SignupResult{Handled: map[string][]string{}, Runs: log.runs, Stats: f.Stats(), DeadLetters: map[string][]DeadLetter{}}
	rows := [][2]string{}
	for _, name := range f.Names() {
		for u := range log.handled[name] {
			res.Handled[name] = append(res.Handled[name], u)
		}
		sort.Strings(res.Handled[name])
		dead, err := a.deadLetters(ctx, name)
		if err != nil {
			return res, err
		}
		for _, d := range dead {
			info, _ := crossbus.DeadLetterInfoOf(&d)
			s, _ := crossbus.DataAs[Signup](&d)
			res.DeadLetters[name] = append(res.DeadLetters[name], DeadLetter{ID: s.User, Reason: info.Reason, Attempts: info.Attempts})
		}
		st := res.Stats[name]
		line := fmt.Sprintf("handled %v, %d runs, %d failed", res.Handled[name], st.Attempts, st.Failed)
		for _, d := range res.DeadLetters[name] {
			line += fmt.Sprintf("; dead letter %s after %d attempts: %q", d.ID, d.Attempts, d.Reason)
		}
		rows = append(rows, [2]string{name, line})
	}
	tr.table(rows)
	return res, nil
}

// deadLetters returns the events in a subscriber's dead-letter queue: from
// the memory provider, or, on another bus, read with package ops (which
// leaves them in the queue).
func (a *app) deadLetters(ctx context.Context, sub string) ([]crossbus.Event, error) {
	if a.mem != nil {
		return a.mem.DeadLetters(signupTopic, sub)
	}
	d, err := ops.NewDeadLetters(a.bus, ops.Source{Topic: signupTopic, Subscription: sub}, ops.Options{Wait: time.Second, Idle: 300 * time.Millisecond})
	if err != nil {
		return nil, err
	}
	var out []crossbus.Event
	for tok := ""; ; {
		p, err := d.List(ctx, ops.ListOptions{Limit: 1000, Page: tok})
		if err != nil {
			return nil, err
		}
		for _, dl := range p.Items {
			out = append(out, dl.Event)
		}
		if tok = p.Next; tok == "" {
			return out, nil
		}
	}
}

// redrivenOrReplayed says whether e was redriven or replayed by the
// crossbus command (package ops marks the events it re-publishes).
func redrivenOrReplayed(e *crossbus.Event) string {
	switch {
	case crossbus.ExtensionString(e, ops.ExtRedriven) != "":
		return "redriven"
	case crossbus.ExtensionString(e, ops.ExtReplayed) != "":
		return "replayed"
	}
	return ""
}

// writeTopology writes the router's topology as JSON to path.
func writeTopology(path string, r *crossbus.Router) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := r.Topology().WriteJSON(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

func waitGroup(ctx context.Context, wg *sync.WaitGroup) error {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
