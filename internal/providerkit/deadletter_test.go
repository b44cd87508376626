package providerkit_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

func TestDeadLetterQueue(t *testing.T) {
	ctx := context.Background()
	e := driver.NewUndecodableEvent("e-1", "/src", []byte("x"), nil)
	info := driver.DeadLetterInfo{Reason: "boom", Attempts: 3}

	var got *driver.Event
	require.NoError(t, providerkit.DeadLetterQueue(ctx, "test", false, &e, info, func(_ context.Context, dl *driver.Event) error {
		got = dl
		return nil
	}))
	gotInfo, ok := driver.DeadLetterInfoOf(got)
	require.True(t, ok, "the published event carries the dead-letter extensions")
	assert.Equal(t, "boom", gotInfo.Reason)
	assert.Equal(t, 3, gotInfo.Attempts)
	_, ok = driver.DeadLetterInfoOf(&e)
	assert.False(t, ok, "the delivered event is left as it was")

	refused := errors.New("queue full")
	err := providerkit.DeadLetterQueue(ctx, "test", false, &e, info, func(context.Context, *driver.Event) error { return refused })
	require.ErrorIs(t, err, driver.ErrNotSupported, "a refusal lets the portable layer fall back")
	require.ErrorIs(t, err, refused)
	assert.Contains(t, err.Error(), `test: the dead-letter queue refused event "e-1"`)

	err = providerkit.DeadLetterQueue(ctx, "test", true, &e, info, func(context.Context, *driver.Event) error {
		t.Fatal("a dead letter is not published again")
		return nil
	})
	require.ErrorIs(t, err, driver.ErrNotSupported)
}
