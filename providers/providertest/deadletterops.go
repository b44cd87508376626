package providertest

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
)

// testDeadLetterOps: the ops package lists a route's dead letters, groups
// them by cause (ids and numbers in the reasons do not split a group),
// shows one, redrives one group to the subscription that gave up on it
// (keeping each event's id, without the dead-letter extensions, marked
// redriven), and purges the rest; listings afterwards show exactly what
// stays. Providers without a readable native queue use a subscription of
// the route's dead-letter topic.
func testDeadLetterOps(t *testing.T, e *env) {
	b := e.bus()
	topic := e.topic()
	sub := e.subscription(topic, SubscriptionOptions{MaxAttempts: 1})
	dl := e.deadLetters(b, topic, sub)
	src := ops.Source{Topic: topic, Subscription: sub, DeadLetterTopic: dl.dlTopic, DeadLetterSubscription: dl.dlSub}

	// The handler fails every event at first: "declined" ones with a card
	// number, "timeout" ones with an address and a duration.
	var healed atomic.Bool
	c := newCollector()
	subscribe(t, e, b, topic, sub, c.handler(func(_ context.Context, ev *crossbus.Event) error {
		if healed.Load() {
			return nil
		}
		var n int
		_, _ = fmt.Sscanf(crossbus.ExtensionString(ev, "n"), "%d", &n)
		if ev.Type() == "com.example.declined" {
			return crossbus.Permanent(fmt.Errorf("card %d declined for order o-%d", 4000+n, n))
		}
		return crossbus.Permanent(fmt.Errorf("dial 10.0.0.%d:5432: i/o timeout after %dms", n, 100*n))
	}), append(dl.opts, crossbus.WithRetry(fastRetry(1)))...)
	const declined, timedOut = 3, 2
	var sent []*crossbus.Event
	for i := range declined + timedOut {
		typ := "com.example.declined"
		if i >= declined {
			typ = "com.example.timeout"
		}
		ev := crossbus.NewEvent(typ, "/providertest")
		ev.SetExtension("n", int32(i+1))
		sent = append(sent, &ev)
	}
	require.NoError(t, b.Publish(e.ctx, topic, sent...))
	c.waitFor(t, e.f.Timeout, "every event handled once", func() bool { return c.distinct() == len(sent) })

	// A read ends once the queue stayed quiet for Idle after its last
	// batch: a fifteenth of the harness's timeout, from half a second (the
	// in-process servers) to two (where delivery is slower).
	idle := min(max(e.f.Timeout/15, 500*time.Millisecond), 2*time.Second)
	d, err := ops.NewDeadLetters(b, src, ops.Options{Wait: min(e.f.Timeout/3, 5*time.Second), Idle: idle})
	require.NoError(t, err)
	// Dead-lettering is asynchronous: wait until all are listed.
	var page ops.Page
	deadline := time.Now().Add(e.f.Timeout)
	for {
		page, err = d.List(e.ctx, ops.ListOptions{Limit: 2})
		require.NoError(t, err, "List")
		if page.Total == len(sent) || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	require.Equal(t, len(sent), page.Total, "every dead letter listed")
	require.Len(t, page.Items, 2, "a page holds Limit dead letters")
	require.NotEmpty(t, page.Next)
	seen := map[string]bool{}
	for tok := ""; ; {
		p, err := d.List(e.ctx, ops.ListOptions{Limit: 2, Page: tok})
		require.NoError(t, err)
		for _, it := range p.Items {
			assert.False(t, seen[it.ID], "dead letter %s on two pages", it.ID)
			seen[it.ID] = true
		}
		if p.Next == "" {
			break
		}
		tok = p.Next
	}
	assert.Len(t, seen, len(sent), "paging reaches every dead letter once")

	groups, err := d.Groups(e.ctx)
	require.NoError(t, err, "Groups")
	require.Len(t, groups, 2, "two causes: %+v", groups)
	assert.Equal(t, declined, groups[0].Count)
	assert.Equal(t, "permanent: card <n> declined for order o-<n>", groups[0].Cause)
	assert.Equal(t, timedOut, groups[1].Count)
	assert.Equal(t, "permanent: dial <addr>: i/o timeout after <duration>", groups[1].Cause)
	assert.Equal(t, topic, groups[0].Topic)
	assert.Equal(t, sub, groups[0].Subscription)

	one, err := d.Get(e.ctx, page.Items[0].ID)
	require.NoError(t, err, "Get")
	assert.Equal(t, page.Items[0].Event.ID(), one.Event.ID())
	assert.Equal(t, 1, one.Attempts)
	assert.Equal(t, topic, one.Topic)
	assert.Equal(t, sub, one.Subscription)
	assert.False(t, one.LastFailure.IsZero())
	assert.False(t, one.FirstFailure.After(one.LastFailure))
	_, err = d.Get(e.ctx, ops.DeadLetterID("/nowhere", "none", sub, time.Now()))
	assert.ErrorIs(t, err, ops.ErrNotFound)
	_, err = d.Redrive(e.ctx, ops.Selection{Group: groups[0].ID}, ops.RedriveOptions{Rate: 0})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption, "a rate of 0 is refused")

	// Redrive the declined group: the handler now succeeds.
	healed.Store(true)
	var progress []ops.Progress
	res, err := d.Redrive(e.ctx, ops.Selection{Group: groups[0].ID}, ops.RedriveOptions{Rate: 50,
		Progress: func(p ops.Progress) { progress = append(progress, p) }})
	require.NoError(t, err, "Redrive")
	assert.Equal(t, declined, res.Done)
	require.Len(t, progress, declined)
	assert.Equal(t, ops.Progress{Done: declined, Total: declined}, progress[declined-1])
	c.waitFor(t, e.f.Timeout, "redriven events handled", func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, ev := range sent[:declined] {
			if c.count[ev.ID()] < 2 {
				return false
			}
		}
		return true
	})
	c.mu.Lock()
	for _, ev := range c.events {
		if crossbus.ExtensionString(&ev, ops.ExtRedriven) == "" {
			continue
		}
		_, isDL := crossbus.DeadLetterInfoOf(&ev)
		assert.False(t, isDL, "a redriven event carries no dead-letter extensions")
		assert.Equal(t, "1", crossbus.ExtensionString(&ev, ops.ExtRedriven))
		assert.Equal(t, "com.example.declined", ev.Type())
	}
	c.mu.Unlock()

	left, err := d.List(e.ctx, ops.ListOptions{})
	require.NoError(t, err)
	require.Equal(t, timedOut, left.Total, "only the other group stays")
	for _, it := range left.Items {
		assert.Equal(t, groups[1].ID, it.Group)
	}
	res, err = d.Purge(e.ctx, ops.Selection{All: true}, ops.PurgeOptions{})
	require.NoError(t, err, "Purge")
	assert.Equal(t, timedOut, res.Done)
	empty, err := d.List(e.ctx, ops.ListOptions{})
	require.NoError(t, err)
	assert.Equal(t, 0, empty.Total, "purged: nothing stays")
	_, err = d.Purge(e.ctx, ops.Selection{Group: groups[1].ID}, ops.PurgeOptions{})
	assert.True(t, errors.Is(err, ops.ErrNotFound), "a purged group is gone: %v", err)
}
