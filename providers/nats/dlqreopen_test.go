package nats_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
)

// Dead letters a program read and returned just before it stopped are
// there for the next program on the same embedded directory at once, not
// after the reader consumer's ack wait (JetStream does not store a Nak:
// the next run's first reader resets the consumer to its ack floor). Each
// run below is a new provider on the directory, as a new process is.
func TestDeadLettersReadBeforeAStopAreThereForTheNextRun(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	open := func() (*crossbus.Bus, *ops.DeadLetters) {
		b, err := crossbus.Open(ctx, "nats+embedded://"+dir)
		require.NoError(t, err)
		d, err := ops.NewDeadLetters(b, ops.Source{Topic: "orders", Subscription: "billing"}, ops.Options{Wait: 2 * time.Second, Idle: 300 * time.Millisecond})
		require.NoError(t, err)
		return b, d
	}
	const n = 3
	b, d := open()
	s, err := b.Subscribe(ctx, "orders", "billing", crossbus.HandlerFunc(func(context.Context, *crossbus.Event) error {
		return crossbus.Permanent(errors.New("card declined"))
	}))
	require.NoError(t, err)
	for range n {
		e := crossbus.NewEvent("com.example.order", "/shop")
		require.NoError(t, b.Publish(ctx, "orders", &e))
	}
	require.Eventually(t, func() bool {
		p, err := d.List(ctx, ops.ListOptions{})
		return err == nil && p.Total == n
	}, 10*time.Second, 50*time.Millisecond)
	require.NoError(t, s.Close(ctx))
	require.NoError(t, b.Close(ctx))

	for run := range 3 {
		b, d = open()
		start := time.Now()
		p, err := d.List(ctx, ops.ListOptions{})
		require.NoError(t, err)
		require.Equal(t, n, p.Total, "run %d sees every dead letter", run+2)
		require.Less(t, time.Since(start), 5*time.Second, "at once, not after the ack wait")
		require.NoError(t, b.Close(ctx))
	}
}
