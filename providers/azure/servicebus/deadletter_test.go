package servicebus_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/driver"
)

// deadLetterN dead-letters n events of the subscription.
func (e *env) deadLetterN(n int) {
	e.t.Helper()
	for i := range n {
		ev := crossbus.NewEvent("com.example.x", "/t")
		ev.SetExtension("n", int32(i))
		require.NoError(e.t, e.bus.Publish(e.ctx, e.topic, &ev))
	}
	r, err := e.p.Subscribe(e.ctx, driver.SubscriptionSpec{Topic: e.topic, Name: e.sub})
	require.NoError(e.t, err)
	defer r.Close(e.ctx)
	buf := make([]driver.Delivery, n)
	for done := 0; done < n; {
		k, err := r.Receive(e.ctx, buf)
		require.NoError(e.t, err)
		for _, d := range buf[:k] {
			require.NoError(e.t, d.DeadLetter(e.ctx, crossbus.DeadLetterInfo{Reason: "no", Attempts: 1}))
		}
		done += k
	}
}

// readAll reads n dead letters within wait, then lets one more Receive run
// until its deadline, as a reader that waits for the queue to be quiet does.
func readAll(ctx context.Context, r driver.Receiver, n int, wait time.Duration) ([]driver.Delivery, error) {
	rctx, cancel := context.WithTimeout(ctx, wait)
	defer cancel()
	var got []driver.Delivery
	buf := make([]driver.Delivery, 64)
	for len(got) < n {
		k, err := r.Receive(rctx, buf)
		if err != nil {
			return got, fmt.Errorf("have %d of %d: %w", len(got), n, err)
		}
		got = append(got, buf[:k]...)
	}
	qctx, qcancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer qcancel()
	if k, err := r.Receive(qctx, buf); !errors.Is(err, context.DeadlineExceeded) {
		return got, fmt.Errorf("quiet queue: got %d deliveries, error %v", k, err)
	}
	return got, nil
}

// Dead letters a reader returns (Nack) and then closes its receiver are
// there for the next reader at once, not after their lock expires: Service
// Bus hands an available message to any link with credit, and a link that
// detaches with messages on their way to it leaves them locked. A
// dead-letter receiver keeps at most one message of credit outstanding, so
// what it returns is not sent back to it in flight.
func TestDeadLettersReturnedBeforeCloseAreThereForTheNextReader(t *testing.T) {
	for _, n := range []int{1, 3} {
		t.Run(fmt.Sprint(n), func(t *testing.T) {
			e := newEnv(t)
			e.deadLetterN(n)
			for round := range 6 {
				r, err := e.p.SubscribeDeadLetters(e.ctx, e.topic, e.sub)
				require.NoError(t, err)
				got, err := readAll(e.ctx, r, n, lockDuration/2)
				require.NoError(t, err, "round %d: the dead letters returned by the previous reader", round)
				for _, d := range got {
					require.NoError(t, d.Nack(e.ctx, 0))
				}
				require.NoError(t, r.Close(e.ctx))
			}
		})
	}
}
