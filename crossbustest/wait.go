package crossbustest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/crossbus/crossbus"
)

// Published returns the events published to topic so far, in publish
// order ("" for every topic).
func (k *Kit) Published(topic string) []Published {
	return matching(k.rec, func(r *recorder) []Published { return r.published }, topic, func(p Published) string { return p.Topic })
}

// Handlings returns the runs of subscription's handler so far, in the order
// they ended ("" for every subscription).
func (k *Kit) Handlings(subscription string) []Handling {
	return matching(k.rec, func(r *recorder) []Handling { return r.handlings }, subscription, func(h Handling) string { return h.Subscription })
}

// Settlements returns how subscription's deliveries were settled so far
// ("" for every subscription).
func (k *Kit) Settlements(subscription string) []Settlement {
	return matching(k.rec, func(r *recorder) []Settlement { return r.settlements }, subscription, func(s Settlement) string { return s.Subscription })
}

// matching copies, under the recorder's lock, the records (read by
// records) whose name (by nameOf) is name, or all of them for "".
func matching[T any](r *recorder, records func(*recorder) []T, name string, nameOf func(T) string) []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []T
	for _, x := range records(r) {
		if name == "" || nameOf(x) == name {
			out = append(out, x)
		}
	}
	return out
}

// DeadLetters returns the events subscription gave up on so far ("" for
// every subscription), in the order they were dead-lettered.
func (k *Kit) DeadLetters(subscription string) []DeadLetter {
	var out []DeadLetter
	for _, s := range k.Settlements(subscription) {
		if s.Outcome == DeadLettered && s.Err == nil {
			out = append(out, DeadLetter{Topic: s.Topic, Subscription: s.Subscription, Event: s.Event, Info: s.Info})
		}
	}
	return out
}

// AwaitIdle waits until the system is idle: no Publish in progress and no
// event waiting, leased or delayed in any subscription the bus consumes. On
// the fake clock it moves the clock on while it waits (see the package
// documentation). It fails when ctx ends or the kit's timeout passes, with
// an error saying what still moves and what happened.
func (k *Kit) AwaitIdle(ctx context.Context) error {
	var why string
	return k.await(ctx, "the bus to be idle", func() bool {
		why = k.rec.busy()
		return why == ""
	}, func() string { return "not idle: " + why })
}

// AwaitPublished waits until an event matching f (nil: any event) has been
// published to topic ("" for any topic) — earlier in the test counts — and
// returns the first such event.
func (k *Kit) AwaitPublished(ctx context.Context, topic string, f crossbus.Filter) (Published, error) {
	var found Published
	err := k.await(ctx, "an event matching "+describe(f)+" to be published"+onTopic(topic), func() bool {
		for _, p := range k.Published(topic) {
			if f == nil || f.Match(&p.Event) {
				found = p
				return true
			}
		}
		return false
	}, nil)
	return found, err
}

// AwaitHandled waits until subscription's handler ("" for any
// subscription's) has returned nil for an event matching f (nil: any event)
// — earlier in the test counts — and returns that handling.
func (k *Kit) AwaitHandled(ctx context.Context, subscription string, f crossbus.Filter) (Handling, error) {
	var found Handling
	what := "an event matching " + describe(f) + " to be handled"
	if subscription != "" {
		what += " by subscription " + strconv.Quote(subscription)
	}
	err := k.await(ctx, what, func() bool {
		for _, h := range k.Handlings(subscription) {
			if h.OK() && (f == nil || f.Match(&h.Event)) {
				found = h
				return true
			}
		}
		return false
	}, nil)
	return found, err
}

// WaitIdle is AwaitIdle that fails the test.
func (k *Kit) WaitIdle() {
	t := k.mustT("WaitIdle")
	t.Helper()
	if err := k.AwaitIdle(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// WaitPublished is AwaitPublished that fails the test.
func (k *Kit) WaitPublished(topic string, f crossbus.Filter) Published {
	t := k.mustT("WaitPublished")
	t.Helper()
	p, err := k.AwaitPublished(context.Background(), topic, f)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// WaitHandled is AwaitHandled that fails the test.
func (k *Kit) WaitHandled(subscription string, f crossbus.Filter) Handling {
	t := k.mustT("WaitHandled")
	t.Helper()
	h, err := k.AwaitHandled(context.Background(), subscription, f)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// AssertNoDeadLetters reports a test error listing the dead letters, if
// there are any, and returns whether there were none.
func (k *Kit) AssertNoDeadLetters() bool {
	t := k.mustT("AssertNoDeadLetters")
	t.Helper()
	dls := k.DeadLetters("")
	if len(dls) == 0 {
		return true
	}
	var b strings.Builder
	fmt.Fprintf(&b, "crossbustest: %d event(s) dead-lettered, want none:", len(dls))
	for _, d := range dls {
		b.WriteString("\n  " + describeDeadLetter(d))
	}
	t.Error(b.String())
	return false
}

// AssertDeadLettered reports a test error unless subscription ("" for any)
// dead-lettered an event matching f (nil: any event) with a reason that
// contains reason; it returns the first such dead letter.
func (k *Kit) AssertDeadLettered(subscription string, f crossbus.Filter, reason string) (DeadLetter, bool) {
	t := k.mustT("AssertDeadLettered")
	t.Helper()
	dls := k.DeadLetters(subscription)
	for _, d := range dls {
		if (f == nil || f.Match(&d.Event)) && strings.Contains(d.Info.Reason, reason) {
			return d, true
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "crossbustest: no event matching %s dead-lettered", describe(f))
	if subscription != "" {
		fmt.Fprintf(&b, " by subscription %q", subscription)
	}
	if reason != "" {
		fmt.Fprintf(&b, " with a reason containing %q", reason)
	}
	fmt.Fprintf(&b, "; %d dead letter(s):", len(dls))
	for _, d := range dls {
		b.WriteString("\n  " + describeDeadLetter(d))
	}
	t.Error(b.String())
	return DeadLetter{}, false
}

// await waits until cond holds, moving the fake clock on when the bus is
// quiet, or fails with a report of what happened.
func (k *Kit) await(ctx context.Context, what string, cond func() bool, state func() string) error {
	ctx, cancel := context.WithTimeout(ctx, k.cfg.timeout)
	defer cancel()
	start := time.Now()
	poll := time.NewTicker(time.Millisecond)
	defer poll.Stop()
	for {
		changed, gen := k.rec.watch()
		if cond() {
			return nil
		}
		if k.clock != nil && k.rec.quiet(gen, k.cfg.quiet) && k.advance() {
			continue
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-ctx.Done():
			msg := fmt.Sprintf("crossbustest: gave up after %v waiting for %s", time.Since(start).Round(time.Millisecond), what)
			if state != nil {
				msg += "; " + state()
			}
			return fmt.Errorf("%s: %w\n%s", msg, ctx.Err(), k.Report())
		}
	}
}

// advance moves the fake clock to its next timer unless that would reach
// the lease deadline of a delivery a handler holds; it reports whether it
// moved.
func (k *Kit) advance() bool {
	next, ok := k.clock.Next()
	if !ok {
		return false
	}
	if lease, held := k.rec.earliestLease(); held && !next.Before(lease) {
		return false
	}
	if d := next.Sub(k.clock.Now()); d > 0 {
		k.clock.Advance(d)
	}
	// Moving the clock is a change: the next move waits for the bus to be
	// quiet again, so what this one woke runs first.
	k.rec.mu.Lock()
	k.rec.touch()
	k.rec.mu.Unlock()
	return true
}

// Report says what happened on the kit's bus: the events published per
// topic, the handler runs and settlements per subscription, the dead
// letters, and what is still in flight. The wait methods add it to their
// failures.
func (k *Kit) Report() string {
	r := k.rec
	r.mu.Lock()
	published := append([]Published(nil), r.published...)
	handlings := append([]Handling(nil), r.handlings...)
	settlements := append([]Settlement(nil), r.settlements...)
	subs := append([]subKey(nil), r.subs...)
	publishing := r.publishing
	r.mu.Unlock()

	var b strings.Builder
	b.WriteString("what happened on the bus")
	if k.clock != nil {
		fmt.Fprintf(&b, " (fake clock at %s", k.clock.Now().Format(time.RFC3339Nano))
		if next, ok := k.clock.Next(); ok {
			fmt.Fprintf(&b, ", next timer in %v", next.Sub(k.clock.Now()))
		}
		b.WriteString(")")
	}
	b.WriteString(":\n")
	byTopic := map[string][]Published{}
	var topics []string
	for _, p := range published {
		if byTopic[p.Topic] == nil {
			topics = append(topics, p.Topic)
		}
		byTopic[p.Topic] = append(byTopic[p.Topic], p)
	}
	sort.Strings(topics)
	fmt.Fprintf(&b, "  published: %d event(s)", len(published))
	if publishing > 0 {
		fmt.Fprintf(&b, ", %d publish(es) in progress", publishing)
	}
	b.WriteString("\n")
	for _, tp := range topics {
		ps := byTopic[tp]
		fmt.Fprintf(&b, "    topic %s: %d\n", tp, len(ps))
		for i, p := range ps {
			if i == reportLines {
				fmt.Fprintf(&b, "      ... %d more\n", len(ps)-i)
				break
			}
			fmt.Fprintf(&b, "      %s\n", describeEvent(&p.Event))
		}
	}
	for _, s := range subs {
		fmt.Fprintf(&b, "  subscription %s of topic %s:", s.name, s.topic)
		if st, err := r.mem.Stats(s.topic, s.name); err == nil {
			fmt.Fprintf(&b, " now %d waiting, %d leased, %d delayed, %d dead", st.Waiting, st.InFlight, st.Delayed, st.Dead)
		}
		b.WriteString("\n")
		var lines []string
		ok, failed := 0, 0
		for _, h := range handlings {
			if h.Subscription != s.name || h.Topic != s.topic {
				continue
			}
			line := "handled " + describeEvent(&h.Event) + " attempt " + itoa(h.Attempt)
			if h.OK() {
				ok++
			} else {
				failed++
				line += ": " + firstLine(h.Err.Error())
			}
			lines = append(lines, line)
		}
		counts := map[Outcome]int{}
		for _, st := range settlements {
			if st.Subscription != s.name || st.Topic != s.topic {
				continue
			}
			counts[st.Outcome]++
			if st.Outcome == DeadLettered && st.Err == nil {
				lines = append(lines, "dead-lettered "+describeEvent(&st.Event)+" after "+itoa(st.Info.Attempts)+" attempt(s): "+firstLine(st.Info.Reason))
			}
		}
		fmt.Fprintf(&b, "    handler runs: %d ok, %d failed; settlements: %d acked, %d nacked, %d dead-lettered\n",
			ok, failed, counts[Acked], counts[Nacked], counts[DeadLettered])
		if len(lines) > reportLines {
			fmt.Fprintf(&b, "    ... %d earlier lines\n", len(lines)-reportLines)
			lines = lines[len(lines)-reportLines:]
		}
		for _, l := range lines {
			b.WriteString("    " + l + "\n")
		}
	}
	return strings.TrimRight(b.String(), "\n")
}

// reportLines bounds each list in a report.
const reportLines = 20

func describe(f crossbus.Filter) string {
	if f == nil {
		return "anything"
	}
	if s, ok := f.(fmt.Stringer); ok {
		return s.String()
	}
	return fmt.Sprintf("%T", f)
}

func onTopic(topic string) string {
	if topic == "" {
		return ""
	}
	return " to topic " + strconv.Quote(topic)
}

func describeEvent(e *crossbus.Event) string {
	s := e.Type() + " id=" + e.ID()
	if sub := e.Subject(); sub != "" {
		s += " subject=" + sub
	}
	if k := crossbus.PartitionKey(e); k != "" {
		s += " key=" + k
	}
	return s
}

func describeDeadLetter(d DeadLetter) string {
	return fmt.Sprintf("%s by subscription %s of topic %s after %d attempt(s): %s",
		describeEvent(&d.Event), d.Subscription, d.Topic, d.Info.Attempts, firstLine(d.Info.Reason))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " ..."
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
