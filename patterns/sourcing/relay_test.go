package sourcing_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	_ "github.com/crossbus/crossbus/providers/memory"
)

// TestRelayRunDeliversAppendsThroughTheBus appends events to a store with an
// outbox and consumes them from a mem:// bus in stream order.
func TestRelayRunDeliversAppendsThroughTheBus(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	bus, err := crossbus.Open(ctx, "mem://")
	require.NoError(t, err)
	defer bus.Close(context.Background())

	var mu sync.Mutex
	got := map[string][]string{} // partition key -> sequences
	all := make(chan struct{}, 100)
	sub, err := bus.Subscribe(ctx, "payouts", "ledger-view", crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		got[crossbus.PartitionKey(e)] = append(got[crossbus.PartitionKey(e)], crossbus.ExtensionString(e, crossbus.ExtSequence))
		mu.Unlock()
		all <- struct{}{}
		return nil
	}), crossbus.WithOrdering())
	require.NoError(t, err)
	defer sub.Close(context.Background())

	store := sourcing.NewMemoryStore(sourcing.MemoryOptions{Outbox: sourcing.ToTopic("payouts")})
	relay := &sourcing.Relay{Outbox: store, Bus: bus, PollInterval: time.Hour}
	done := make(chan error, 1)
	go func() { done <- relay.Run(ctx) }()

	for i := 0; i < 10; i++ {
		_, err := store.Append(ctx, []string{"seller-1", "seller-2"}[i%2], sourcing.Any, credit(i))
		require.NoError(t, err)
	}
	for i := 0; i < 10; i++ {
		select {
		case <-all:
		case <-time.After(5 * time.Second):
			t.Fatalf("only %d of 10 events arrived", i)
		}
	}
	cancel()
	require.NoError(t, <-done)
	mu.Lock()
	defer mu.Unlock()
	seq := func(n int) []string {
		var s []string
		for i := 1; i <= n; i++ {
			s = append(s, "0000000000000000000"+string(rune('0'+i)))
		}
		return s
	}
	assert.Equal(t, seq(5), got["seller-1"], "stream order, stamped with the stream version")
	assert.Equal(t, seq(5), got["seller-2"])
	left, err := store.PendingOutbox(context.Background(), 10)
	require.NoError(t, err)
	assert.Empty(t, left)
}

func TestRelayNeedsOutboxAndBus(t *testing.T) {
	_, err := (&sourcing.Relay{}).Flush(context.Background())
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	require.ErrorIs(t, (&sourcing.Relay{}).Run(context.Background()), crossbus.ErrInvalidOption)
}
