package dynamodb_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/dynamodb"
	"github.com/crossbus/crossbus/stores/storetest"
)

// faulty is a dynamodb.API that fails the calls its hooks pick, as a
// connection lost at that moment would: the call never reaches the table.
type faulty struct {
	dynamodb.API
	failPut   atomic.Pointer[func(*ddb.PutItemInput) bool]
	failBatch atomic.Bool
	failAll   atomic.Bool
}

var errCut = errors.New("connection cut by the test")

func (f *faulty) PutItem(ctx context.Context, in *ddb.PutItemInput, o ...func(*ddb.Options)) (*ddb.PutItemOutput, error) {
	if p := f.failPut.Load(); f.failAll.Load() || p != nil && (*p)(in) {
		return nil, fmt.Errorf("operation error DynamoDB: PutItem: %w", errCut)
	}
	return f.API.PutItem(ctx, in, o...)
}

func (f *faulty) BatchWriteItem(ctx context.Context, in *ddb.BatchWriteItemInput, o ...func(*ddb.Options)) (*ddb.BatchWriteItemOutput, error) {
	if f.failAll.Load() || f.failBatch.Load() {
		return nil, fmt.Errorf("operation error DynamoDB: BatchWriteItem: %w", errCut)
	}
	return f.API.BatchWriteItem(ctx, in, o...)
}

func (f *faulty) Query(ctx context.Context, in *ddb.QueryInput, o ...func(*ddb.Options)) (*ddb.QueryOutput, error) {
	if f.failAll.Load() {
		return nil, fmt.Errorf("operation error DynamoDB: Query: %w", errCut)
	}
	return f.API.Query(ctx, in, o...)
}

// failLogPuts makes every put into the global log fail.
func (f *faulty) failLogPuts() {
	fn := func(in *ddb.PutItemInput) bool {
		pk, ok := in.Item["pk"].(*types.AttributeValueMemberS)
		return ok && pk.Value == "log"
	}
	f.failPut.Store(&fn)
}

func (f *faulty) heal() {
	f.failPut.Store(nil)
	f.failBatch.Store(false)
	f.failAll.Store(false)
}

func newFaultyEventStore(t *testing.T) (*dynamodb.EventStore, *faulty) {
	t.Helper()
	c, tables := newTables(t)
	f := &faulty{API: c}
	s, err := dynamodb.NewEventStore(context.Background(), f, tables.Events)
	require.NoError(t, err)
	return s, f
}

func streamVersions(t *testing.T, s sourcing.Store) map[string]int {
	t.Helper()
	recs, err := sourcing.Collect(s.ReadAll(context.Background(), 1))
	require.NoError(t, err)
	out := map[string]int{}
	for i, r := range recs {
		require.Equal(t, uint64(i+1), r.Position, "the global log is gap-free")
		out[r.Stream]++
		require.Equal(t, uint64(out[r.Stream]), r.Version, "%s at position %d", r.Stream, r.Position)
	}
	return out
}

// An appender that stops after its commit and before the global log: the
// append is recorded (its version taken) but not in ReadAll; the retry
// finds its events recorded and succeeds; they are in ReadAll once.
func TestAppendInterruptedBeforeTheGlobalLog(t *testing.T) {
	ctx := context.Background()
	s, f := newFaultyEventStore(t)
	batch := []*crossbus.Event{storetest.NewTestEvent("deposited", nil), storetest.NewTestEvent("deposited", nil)}
	f.failLogPuts()
	_, err := s.Append(ctx, "acct-1", sourcing.NoStream, batch...)
	require.ErrorIs(t, err, errCut)
	assert.Contains(t, err.Error(), `dynamodb: append to "acct-1": recorded at version 1, but its publication (global log entry, dedupe markers) did not finish`)
	f.heal()

	v, err := s.StreamVersion(ctx, "acct-1")
	require.NoError(t, err)
	assert.Equal(t, uint64(2), v, "the version is taken")
	head, err := s.Head(ctx)
	require.NoError(t, err)
	assert.Zero(t, head, "not yet in the global order")

	res, err := s.Append(ctx, "acct-1", sourcing.NoStream, batch...)
	require.NoError(t, err, "the retry succeeds whatever it expected")
	assert.Equal(t, 2, res.Duplicates)
	assert.Equal(t, uint64(2), res.Version)
	assert.Equal(t, map[string]int{"acct-1": 2}, streamVersions(t, s))
}

// An appender that stops after the global log and before its dedupe
// markers: the retry still finds its events (it finishes the markers
// first) and records nothing twice.
func TestAppendInterruptedBeforeTheMarkers(t *testing.T) {
	ctx := context.Background()
	s, f := newFaultyEventStore(t)
	_, err := s.Append(ctx, "acct-1", sourcing.NoStream, storetest.NewTestEvent("opened", nil))
	require.NoError(t, err)
	batch := []*crossbus.Event{storetest.NewTestEvent("deposited", nil), storetest.NewTestEvent("deposited", nil)}
	f.failBatch.Store(true)
	_, err = s.Append(ctx, "acct-1", sourcing.Exactly(1), batch...)
	require.ErrorIs(t, err, errCut)
	f.heal()
	res, err := s.Append(ctx, "acct-1", sourcing.Exactly(1), batch...)
	require.NoError(t, err)
	assert.Equal(t, 0, res.Appended)
	assert.Equal(t, uint64(3), res.Version)
	assert.Equal(t, map[string]int{"acct-1": 3}, streamVersions(t, s))
}

// Appends left unpublished in streams nobody touches again are published
// by Recover; a reader of the stream publishes its own.
func TestRecoverPublishesWhatWasLeft(t *testing.T) {
	ctx := context.Background()
	s, f := newFaultyEventStore(t)
	_, err := s.Append(ctx, "a", sourcing.Any, storetest.NewTestEvent("e", nil))
	require.NoError(t, err)
	f.failLogPuts()
	for _, stream := range []string{"b", "c", "d"} {
		_, err := s.Append(ctx, stream, sourcing.Any, storetest.NewTestEvent("e", nil), storetest.NewTestEvent("e", nil))
		require.ErrorIs(t, err, errCut)
	}
	f.heal()
	recs, err := sourcing.Collect(s.ReadStream(ctx, "d", 1))
	require.NoError(t, err)
	require.Len(t, recs, 2)
	assert.Equal(t, uint64(2), recs[0].Position, "reading d published it after a")
	n, err := s.Recover(ctx)
	require.NoError(t, err)
	assert.Equal(t, 2, n, "b and c")
	n, err = s.Recover(ctx)
	require.NoError(t, err)
	assert.Zero(t, n, "nothing left")
	assert.Equal(t, map[string]int{"a": 1, "b": 2, "c": 2, "d": 2}, streamVersions(t, s))
}

// Many callers publish the same unpublished append at once while other
// appends race for the global log: it enters the log exactly once.
func TestConcurrentPublishersOfOneAppend(t *testing.T) {
	ctx := context.Background()
	for round := 0; round < 3; round++ {
		s, f := newFaultyEventStore(t)
		f.failLogPuts()
		_, err := s.Append(ctx, "left", sourcing.Any, storetest.NewTestEvent("e", nil), storetest.NewTestEvent("e", nil))
		require.ErrorIs(t, err, errCut)
		f.heal()
		var wg sync.WaitGroup
		for g := 0; g < 6; g++ {
			wg.Add(2)
			go func() {
				defer wg.Done()
				_, err := sourcing.Collect(s.ReadStream(ctx, "left", 1))
				assert.NoError(t, err)
			}()
			go func() {
				defer wg.Done()
				_, err := s.Append(ctx, fmt.Sprintf("other-%d", g), sourcing.Any, storetest.NewTestEvent("e", nil))
				assert.NoError(t, err)
			}()
		}
		wg.Wait()
		versions := streamVersions(t, s)
		assert.Equal(t, 2, versions["left"], "round %d: the append is in the log once", round)
		assert.Len(t, versions, 7)
	}
}

// While the table is unreachable every call fails with an error that names
// the operation and wraps the cause; nothing is half-written, and the store
// works again afterwards.
func TestUnreachableTable(t *testing.T) {
	ctx := context.Background()
	s, f := newFaultyEventStore(t)
	_, err := s.Append(ctx, "acct", sourcing.Any, storetest.NewTestEvent("e", nil))
	require.NoError(t, err)
	f.failAll.Store(true)
	_, err = s.Append(ctx, "acct", sourcing.Any, storetest.NewTestEvent("e", nil))
	require.ErrorIs(t, err, errCut)
	assert.Contains(t, err.Error(), `dynamodb: append to "acct": dynamodb: read the stream version: `)
	_, err = s.Head(ctx)
	require.ErrorIs(t, err, errCut)
	assert.Contains(t, err.Error(), "dynamodb: read the global log's head: ")
	_, err = sourcing.Collect(s.ReadAll(ctx, 1))
	require.ErrorIs(t, err, errCut)
	assert.Contains(t, err.Error(), "dynamodb: read all: ")
	f.heal()
	_, err = s.Append(ctx, "acct", sourcing.Exactly(1), storetest.NewTestEvent("e", nil))
	require.NoError(t, err)
	assert.Equal(t, map[string]int{"acct": 2}, streamVersions(t, s))
}

// A missing table is refused when the store is made, with a message that
// says what to do; so is a table with other keys. A table deleted later
// fails at use, saying so.
func TestMisconfiguredTables(t *testing.T) {
	ctx := context.Background()
	c := newClient(endpoint(t))
	_, err := dynamodb.NewEventStore(ctx, c, "no-such-table-"+claimtoken.New()[:8])
	var nf *types.ResourceNotFoundException
	require.ErrorAs(t, err, &nf)
	assert.Contains(t, err.Error(), "does not exist (create it with CreateTables; it needs partition key pk (string) and sort key sk (string))")

	_, tables := newTables(t)
	_, err = dynamodb.NewEventStore(ctx, c, tables.Idempotency)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "the table has partition key pk; the store needs partition key pk (string) and sort key sk (string)")
	_, err = dynamodb.NewIdempotencyStore(ctx, c, tables.Events)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = dynamodb.NewIdempotencyStore(ctx, c, "")
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = dynamodb.NewIdempotencyStore(ctx, nil, tables.Idempotency)
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)

	idem, err := dynamodb.NewIdempotencyStore(ctx, c, tables.Idempotency)
	require.NoError(t, err)
	_, err = c.DeleteTable(ctx, &ddb.DeleteTableInput{TableName: aws.String(tables.Idempotency)})
	require.NoError(t, err)
	_, err = idem.Begin(ctx, "k", time.Minute)
	require.ErrorAs(t, err, &nf)
	assert.Contains(t, err.Error(), fmt.Sprintf("dynamodb: idempotency begin: table %q does not exist (create it with CreateTables)", tables.Idempotency))

	// CreateTables refuses to reuse a table of another layout.
	err = dynamodb.CreateTables(ctx, c, dynamodb.CreateTablesOptions{Tables: dynamodb.Tables{Leases: tables.Events}, NoTimeToLive: true})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

// Two stores on one table — two processes — append at once: they race for
// positions in the global log (the turn at the log is per store), and the
// log stays gap-free with every append in it once, in version order.
func TestTwoProcessesShareTheLog(t *testing.T) {
	endpoint(t)
	ctx := context.Background()
	_, tables := newTables(t)
	var stores [2]*dynamodb.EventStore
	for i := range stores {
		s, err := dynamodb.NewEventStore(ctx, newClient(endpoint(t)), tables.Events)
		require.NoError(t, err)
		stores[i] = s
	}
	const writers, appends = 3, 15
	var wg sync.WaitGroup
	for p, s := range stores {
		for w := 0; w < writers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := 0; i < appends; i++ {
					_, err := s.Append(ctx, fmt.Sprintf("p%d-w%d", p, w%2), sourcing.Any, storetest.NewTestEvent("e", nil), storetest.NewTestEvent("e", nil))
					if !assert.NoError(t, err) {
						return
					}
				}
			}()
		}
	}
	wg.Wait()
	versions := streamVersions(t, stores[0])
	total := 0
	for _, n := range versions {
		total += n
	}
	assert.Equal(t, 2*writers*appends*2, total)
	assert.Len(t, versions, 4)
}
