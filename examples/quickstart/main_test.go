package main

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestQuickstart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	res, err := run(ctx, &out)
	require.NoError(t, err, out.String())
	assert.ElementsMatch(t, []string{"o-1", "o-2"}, res.Handled)
	assert.Equal(t, 1, res.Attempts["o-1"], "the duplicate was skipped")
	assert.Equal(t, 3, res.Attempts["o-2"], "retried twice, then succeeded")
	assert.Equal(t, []string{"o-3"}, res.DeadLettered)
	assert.Contains(t, out.String(), "negative amount")
}
