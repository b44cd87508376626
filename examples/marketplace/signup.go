package main

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/crossbus/crossbus"
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
	var wg sync.WaitGroup // one Done per successful handling or dead letter
	sms := crossbus.Typed(func(ctx context.Context, e *crossbus.Event, s Signup) error {
		info, _ := crossbus.DeliveryInfoFrom(ctx)
		switch {
		case strings.HasPrefix(s.Phone, "+999"):
			log.ran("sms", s.User, false)
			tr.log("sms", "%s attempt %d/%d: carrier gateway timeout for %s", s.User, info.Attempt, info.MaxAttempts, s.Phone)
			if info.Attempt == info.MaxAttempts {
				defer wg.Done() // goes to the dead-letter queue now
			}
			return fmt.Errorf("carrier gateway timeout for %s", s.Phone)
		case info.Attempt == 1:
			log.ran("sms", s.User, false)
			tr.log("sms", "%s attempt 1: 503 from the SMS provider, will retry", s.User)
			return errors.New("sms provider: 503 service unavailable")
		}
		log.ran("sms", s.User, true)
		tr.log("sms", "%s attempt %d: welcome text sent to %s", s.User, info.Attempt, s.Phone)
		wg.Done()
		return nil
	})
	simple := func(name, what string) crossbus.Handler {
		return crossbus.Typed(func(ctx context.Context, e *crossbus.Event, s Signup) error {
			log.ran(name, s.User, true)
			tr.log(name, "%s: %s", s.User, what)
			wg.Done()
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
	running, err := f.Start(ctx, a.bus)
	if err != nil {
		return SignupResult{}, err
	}
	defer running.Close(context.Background())

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
	}
	wg.Add(4 * len(users))
	tr.log("bus", "publish %d sign-ups to %s (4 subscribers)", len(users), signupTopic)
	if err := f.Publish(ctx, a.bus, events...); err != nil {
		return SignupResult{}, err
	}
	tr.log("bus", "inject a duplicate delivery of u-2's sign-up (event %s)", events[1].ID())
	if err := f.Publish(ctx, a.bus, events[1]); err != nil {
		return SignupResult{}, err
	}
	if err := waitGroup(ctx, &wg); err != nil {
		return SignupResult{}, err
	}
	// The duplicate is skipped by each subscriber's idempotency check; close
	// (drain) before reading the counters.
	if err := running.Close(ctx); err != nil {
		return SignupResult{}, err
	}

	res := SignupResult{Handled: map[string][]string{}, Runs: log.runs, Stats: f.Stats(), DeadLetters: map[string][]DeadLetter{}}
	rows := [][2]string{}
	for _, name := range f.Names() {
		for u := range log.handled[name] {
			res.Handled[name] = append(res.Handled[name], u)
		}
		sort.Strings(res.Handled[name])
		dead, err := a.mem.DeadLetters(signupTopic, name)
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
