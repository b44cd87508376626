package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/crossbustest"
)

// The demo runs on the test kit's bus: its retries follow the kit's fake
// clock, which the kit's waits move on, and the kit records every handler
// run and dead letter.
func TestQuickstart(t *testing.T) {
	t.Parallel()
	kit := crossbustest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	type result struct {
		res Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := run(ctx, kit.Bus(), &out)
		done <- result{res, err}
	}()
	kit.WaitHandled("billing", crossbus.Field("data", "id").Equals("o-2"))
	kit.WaitIdle()
	r := <-done
	require.NoError(t, r.err, out.String())
	res := r.res
	assert.ElementsMatch(t, []string{"o-1", "o-2"}, res.Handled)
	assert.Equal(t, 1, res.Attempts["o-1"], "the duplicate was skipped")
	assert.Equal(t, 3, res.Attempts["o-2"], "retried twice, then succeeded")
	assert.Equal(t, []string{"o-3"}, res.DeadLettered)
	assert.Contains(t, out.String(), "negative amount")

	// What the kit saw agrees.
	assert.Len(t, kit.Published("orders"), 4, "three orders and the duplicate")
	runs := map[string]int{}
	for _, h := range kit.Handlings("billing") {
		o, _ := crossbus.DataAs[Order](&h.Event)
		runs[o.ID]++
	}
	assert.Equal(t, map[string]int{"o-1": 1, "o-2": 3, "o-3": 1}, runs)
	dl, _ := kit.AssertDeadLettered("billing", crossbus.Field("data", "id").Equals("o-3"), "negative amount")
	assert.Equal(t, 1, dl.Info.Attempts, "a permanent error is not retried")
	assert.Len(t, kit.DeadLetters(""), 1)
}
