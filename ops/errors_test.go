package ops_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/ops"
)

// Each error names the package once, at its start, however many errors
// of the package or of the crossbus root it wraps; errors.Is still
// matches what it wraps.
func TestErrorTextNamesThePackageOnce(t *testing.T) {
	ctx := context.Background()
	b := memBus(t)
	d := deadLettered(t, b, "orders", "billing", 1)
	unknown := ops.DeadLetterID("/nowhere", "none", "billing", time.Now())
	closed := memBus(t)
	require.NoError(t, closed.Close(ctx))
	onClosed, err := ops.NewDeadLetters(closed, ops.Source{Topic: "orders", Subscription: "billing"}, ops.Options{})
	require.NoError(t, err)

	cases := map[string]struct {
		err  error
		want error
	}{
		"unknown dead letter": {func() error { _, err := d.Get(ctx, unknown); return err }(), ops.ErrNotFound},
		"unknown group":       {func() error { _, err := d.List(ctx, ops.ListOptions{Group: "g0"}); return err }(), ops.ErrNotFound},
		"redrive of an unknown id": {func() error {
			_, err := d.Redrive(ctx, ops.Selection{IDs: []string{unknown}}, ops.RedriveOptions{Rate: 10})
			return err
		}(), ops.ErrNotFound},
		"purge of an unknown group": {func() error { _, err := d.Purge(ctx, ops.Selection{Group: "g0"}, ops.PurgeOptions{}); return err }(), ops.ErrNotFound},
		"no bus":                    {func() error { _, err := ops.NewDeadLetters(nil, ops.Source{}, ops.Options{}); return err }(), crossbus.ErrInvalidOption},
		"bad route name": {func() error {
			_, err := ops.NewDeadLetters(b, ops.Source{Topic: "a b", Subscription: "s"}, ops.Options{})
			return err
		}(), crossbus.ErrInvalidName},
		"rate 0": {func() error {
			_, err := d.Redrive(ctx, ops.Selection{All: true}, ops.RedriveOptions{})
			return err
		}(), crossbus.ErrInvalidOption},
		"bad id":                 {func() error { _, err := d.Get(ctx, "x"); return err }(), crossbus.ErrInvalidOption},
		"read on a closed bus":   {func() error { _, err := onClosed.List(ctx, ops.ListOptions{}); return err }(), crossbus.ErrClosed},
		"replay without a store": {func() error { _, err := ops.NewReplayer(b, nil); return err }(), crossbus.ErrInvalidOption},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			require.Error(t, c.err)
			msg := c.err.Error()
			assert.True(t, strings.HasPrefix(msg, "crossbus/ops: "), "starts with the package: %s", msg)
			assert.Equal(t, 1, strings.Count(msg, "crossbus/ops:"), "package named once: %s", msg)
			assert.NotContains(t, msg, "crossbus: ", "the library is named once: %s", msg)
			assert.True(t, errors.Is(c.err, c.want), "errors.Is(%v, %v)", c.err, c.want)
		})
	}
}
