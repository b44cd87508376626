package redis_test

import (
	"context"
	"os"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/patterns/leader"
	"github.com/crossbus/crossbus/patterns/sourcing"
	"github.com/crossbus/crossbus/sequence"
	"github.com/crossbus/crossbus/stores/redis"
	"github.com/crossbus/crossbus/stores/storetest"
)

// serverURL returns the Redis the tests use (CROSSBUS_REDIS_URL, set by
// scripts/deps/redis.sh), or skips the test saying why there is none.
func serverURL(t testing.TB) string {
	t.Helper()
	url := os.Getenv("CROSSBUS_REDIS_URL")
	if url == "" {
		t.Skip("CROSSBUS_REDIS_URL is not set (scripts/deps/redis.sh starts a Redis and sets it)")
	}
	reachable.once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		s, err := redis.Open(ctx, url, redis.Options{})
		if err != nil {
			reachable.err = err
			return
		}
		reachable.err = s.Close()
	})
	if reachable.err != nil {
		t.Skipf("the Redis at CROSSBUS_REDIS_URL does not answer: %v", reachable.err)
	}
	return url
}

var reachable struct {
	once sync.Once
	err  error
}

// newStore opens a Store with a key prefix of its own, so tests and
// packages sharing the server do not see each other's keys; its keys are
// deleted when the test ends.
func newStore(t testing.TB) *redis.Store {
	t.Helper()
	return newStoreOpts(t, redis.Options{})
}

// newStoreOpts is newStore with options (the prefix is set here).
func newStoreOpts(t testing.TB, opts redis.Options) *redis.Store {
	t.Helper()
	url := serverURL(t)
	prefix := "test-" + claimtoken.New()[:12]
	opts.Prefix = prefix
	s, err := redis.Open(context.Background(), url, opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		deleteKeys(t, s.Client(), prefix+":*")
		require.NoError(t, s.Close())
	})
	return s
}

func deleteKeys(t testing.TB, c goredis.UniversalClient, pattern string) {
	ctx := context.Background()
	iter := c.Scan(ctx, 0, pattern, 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
	}
	if err := iter.Err(); err != nil {
		t.Logf("scan %s: %v", pattern, err)
		return
	}
	for len(keys) > 0 {
		n := min(len(keys), 500)
		if err := c.Del(ctx, keys[:n]...).Err(); err != nil {
			t.Logf("delete test keys: %v", err)
			return
		}
		keys = keys[n:]
	}
}

func TestIdempotencyStore(t *testing.T) {
	serverURL(t) // skip once, here, when there is no server
	storetest.TestIdempotencyStore(t, func(t *testing.T) crossbus.IdempotencyStore { return newStore(t).Idempotency() })
}

func TestSequenceStore(t *testing.T) {
	serverURL(t) // skip once, here, when there is no server
	storetest.TestSequenceStore(t, func(t *testing.T) sequence.Store { return newStore(t).Sequences() })
}

func TestCheckpointStore(t *testing.T) {
	serverURL(t) // skip once, here, when there is no server
	storetest.TestCheckpointStore(t, func(t *testing.T) sourcing.CheckpointStore { return newStore(t).Checkpoints() })
}

func TestLeaderStore(t *testing.T) {
	serverURL(t) // skip once, here, when there is no server
	storetest.TestLeaderStore(t, func(t *testing.T) leader.Store { return newStore(t).Leader() })
}
