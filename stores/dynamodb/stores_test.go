package dynamodb_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	ddb "github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/chain"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/stores/dynamodb"
	"github.com/crossbus/crossbus/stores/storetest"
)

// endpoint returns the DynamoDB-compatible server the tests use
// (CROSSBUS_DYNAMODB_ENDPOINT, set by scripts/deps/dynalite.sh), or skips
// the test saying why there is none.
func endpoint(t testing.TB) string {
	t.Helper()
	ep := os.Getenv("CROSSBUS_DYNAMODB_ENDPOINT")
	if ep == "" {
		t.Skip("CROSSBUS_DYNAMODB_ENDPOINT is not set (scripts/deps/dynalite.sh starts dynalite and sets it)")
	}
	reachable.once.Do(func() {
		u, err := url.Parse(ep)
		if err != nil {
			reachable.err = err
			return
		}
		conn, err := net.DialTimeout("tcp", u.Host, 3*time.Second)
		if err != nil {
			reachable.err = err
			return
		}
		reachable.err = conn.Close()
	})
	if reachable.err != nil {
		t.Skipf("the server at CROSSBUS_DYNAMODB_ENDPOINT does not answer: %v", reachable.err)
	}
	return ep
}

var reachable struct {
	once sync.Once
	err  error
}

// newClient returns a client for the server at ep.
func newClient(ep string) *ddb.Client {
	return ddb.New(ddb.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(ep),
		Credentials:  credentials.NewStaticCredentialsProvider("test", "test", ""),
	})
}

// newTables creates tables of the test's own (random names) and deletes
// them when it ends.
func newTables(t testing.TB) (*ddb.Client, dynamodb.Tables) {
	t.Helper()
	return newTablesAt(t, endpoint(t))
}

// newTablesAt is newTables on the server at ep.
func newTablesAt(t testing.TB, ep string) (*ddb.Client, dynamodb.Tables) {
	t.Helper()
	c := newClient(ep)
	tables := dynamodb.DefaultTables("t" + claimtoken.New()[:12])
	ctx := context.Background()
	require.NoError(t, dynamodb.CreateTables(ctx, c, dynamodb.CreateTablesOptions{Tables: tables, NoTimeToLive: true}))
	t.Cleanup(func() {
		for _, name := range []string{tables.Idempotency, tables.Events, tables.Chains, tables.Leases} {
			_, err := c.DeleteTable(context.Background(), &ddb.DeleteTableInput{TableName: aws.String(name)})
			var nf *types.ResourceNotFoundException
			if err != nil && !errors.As(err, &nf) {
				t.Logf("delete table %s: %v", name, err)
			}
		}
	})
	return c, tables
}

func newEventStore(t testing.TB) *dynamodb.EventStore {
	t.Helper()
	c, tables := newTables(t)
	s, err := dynamodb.NewEventStore(context.Background(), c, tables.Events)
	require.NoError(t, err)
	return s
}

func TestIdempotencyStore(t *testing.T) {
	endpoint(t) // skip once, here, when there is no server
	storetest.TestIdempotencyStore(t, func(t *testing.T) crossbus.IdempotencyStore {
		c, tables := newTables(t)
		s, err := dynamodb.NewIdempotencyStore(context.Background(), c, tables.Idempotency)
		require.NoError(t, err)
		return s
	})
}

func TestEventStore(t *testing.T) {
	endpoint(t) // skip once, here, when there is no server
	storetest.TestEventStore(t, func(t *testing.T) sourcing.Store { return newEventStore(t) })
}

func TestSnapshotStore(t *testing.T) {
	endpoint(t) // skip once, here, when there is no server
	storetest.TestSnapshotStore(t, func(t *testing.T) sourcing.SnapshotStore { return newEventStore(t) })
}

func TestCheckpointStore(t *testing.T) {
	endpoint(t) // skip once, here, when there is no server
	storetest.TestCheckpointStore(t, func(t *testing.T) sourcing.CheckpointStore { return newEventStore(t) })
}

func TestChainStore(t *testing.T) {
	endpoint(t) // skip once, here, when there is no server
	storetest.TestChainStore(t, func(t *testing.T) chain.Store {
		c, tables := newTables(t)
		s, err := dynamodb.NewChainStore(context.Background(), c, tables.Chains)
		require.NoError(t, err)
		return s
	})
}

func TestLeaderStore(t *testing.T) {
	endpoint(t) // skip once, here, when there is no server
	storetest.TestLeaderStore(t, func(t *testing.T) leader.Store {
		c, tables := newTables(t)
		s, err := dynamodb.NewLeaderStore(context.Background(), c, tables.Leases)
		require.NoError(t, err)
		return s
	})
}
