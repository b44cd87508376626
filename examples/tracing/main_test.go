package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOneTraceAcrossTheFanOut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var spans, out bytes.Buffer
	n, err := run(ctx, &spans, &out)
	require.NoError(t, err, out.String())
	// root + producer + email + analytics + sms twice (a failed and a retried delivery)
	assert.Equal(t, 6, n)
	dec := json.NewDecoder(&spans)
	traces := map[string]int{}
	names := map[string]int{}
	for dec.More() {
		var s struct {
			Name        string
			SpanContext struct{ TraceID string }
		}
		require.NoError(t, dec.Decode(&s))
		traces[s.SpanContext.TraceID]++
		names[s.Name]++
	}
	assert.Len(t, traces, 1, "every span is in one trace: %v", traces)
	assert.Equal(t, 1, names["send user-signedup"])
	assert.Equal(t, 2, names["process sms"])
	assert.Equal(t, 1, names["process email"])
	assert.True(t, strings.Contains(out.String(), "sms gateway timeout"))
}
