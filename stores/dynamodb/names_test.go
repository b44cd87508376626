package dynamodb_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/dynamodb"
	"github.com/crossbus/crossbus/stores/storetest"
)

// Names that DynamoDB keys cannot hold as they are — invalid UTF-8, the
// longest stream name, ids and keys over the key size limits — still work:
// streams read back under their own names, long ids still deduplicate.
func TestNamesBeyondKeyLimits(t *testing.T) {
	endpoint(t)
	ctx := context.Background()
	s := newEventStore(t)
	streams := []string{string([]byte{'a', 0xff, 0xfe}), strings.Repeat("x", sourcing.MaxStreamName), "s:with:colons", "~b64?"}
	for _, stream := range streams {
		_, err := s.Append(ctx, stream, sourcing.NoStream, storetest.NewTestEvent("e", nil))
		require.NoError(t, err, "stream %q", stream)
	}
	recs, err := sourcing.Collect(s.ReadAll(ctx, 1))
	require.NoError(t, err)
	require.Len(t, recs, len(streams))
	for i, r := range recs {
		assert.Equal(t, streams[i], r.Stream)
	}

	long := crossbus.NewEvent("e", "/src")
	long.SetID(strings.Repeat("id", 1000)) // over the 1,024-byte sort key limit
	for i := 0; i < 2; i++ {
		res, err := s.Append(ctx, "long-ids", sourcing.Any, &long)
		require.NoError(t, err)
		assert.Equal(t, uint64(1), res.Version, "append %d", i)
	}

	c, tables := newTables(t)
	idem, err := dynamodb.NewIdempotencyStore(ctx, c, tables.Idempotency)
	require.NoError(t, err)
	for _, key := range []string{strings.Repeat("k", 5000), string([]byte{0xff}), ""} {
		claim, err := idem.Begin(ctx, key, time.Minute)
		require.NoError(t, err)
		require.Equal(t, crossbus.ClaimNew, claim.Status, "key of %d bytes", len(key))
		require.NoError(t, idem.Complete(ctx, key, claim.Token, time.Minute))
		again, err := idem.Begin(ctx, key, time.Minute)
		require.NoError(t, err)
		assert.Equal(t, crossbus.ClaimCompleted, again.Status)
	}
}
