package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSpikeIsAbsorbedWithoutLosingEvents(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := DefaultConfig()
	var out bytes.Buffer
	res, err := run(ctx, &out, cfg)
	require.NoError(t, err, out.String())
	t.Log("\n" + out.String())
	assert.Equal(t, cfg.Orders, res.Published)
	assert.Equal(t, cfg.Orders, res.Handled, "every order was handled")
	assert.Zero(t, res.DeadLettered, "no retry attempts were burned down to the dead-letter queue")
	assert.Zero(t, res.Lost)
	assert.Positive(t, res.FailedCalls, "the downstream had an outage")
	assert.GreaterOrEqual(t, res.BreakerOpened, 1, "the breaker opened during it")
	assert.LessOrEqual(t, res.MaxConcurrent, int64(cfg.Workers), "the downstream never saw more calls at once than the route's concurrency")
	// While open the downstream is left alone. The failed calls are the run
	// that opened the breaker (which calls begun before the outage and
	// succeeding during it can restart, at most Workers-1 of them), the
	// calls already running when it opened, and one failed probe per
	// reopening.
	assert.LessOrEqual(t, res.FailedCalls, int64(cfg.OpenAfter+2*(cfg.Workers-1)+res.BreakerOpened-1))
	assert.Contains(t, out.String(), "breaker closed -> open")
	assert.Contains(t, out.String(), "lost 0")
}
