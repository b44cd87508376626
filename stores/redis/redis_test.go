package redis_test

import (
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
	"github.com/crossbus/crossbus/sequence"
	"github.com/crossbus/crossbus/stores/redis"
)

// Sequences beyond the shared suite: Lua holds numbers as float64, so the
// store must compare sequences as text; keys may hold any bytes; of
// concurrent advances to one sequence exactly one stores it.
func TestSequenceStoreExact(t *testing.T) {
	ctx := context.Background()
	seqs := newStore(t).Sequences()
	adv := func(key string, n uint64) bool {
		t.Helper()
		ok, err := seqs.Advance(ctx, key, n)
		require.NoError(t, err)
		return ok
	}
	last := func(key string) uint64 {
		t.Helper()
		n, err := seqs.Last(ctx, key)
		require.NoError(t, err)
		return n
	}
	t.Run("LargeSequencesKeepEveryDigit", func(t *testing.T) {
		const big = uint64(1) << 53
		require.True(t, adv("k", big))
		assert.True(t, adv("k", big+1), "2^53+1 is after 2^53")
		assert.False(t, adv("k", big+1))
		assert.True(t, adv("k", math.MaxUint64-1))
		assert.True(t, adv("k", math.MaxUint64))
		assert.False(t, adv("k", math.MaxUint64-1))
		assert.Equal(t, uint64(math.MaxUint64), last("k"))
		require.True(t, adv("short", 9))
		assert.True(t, adv("short", 10), "numbers of different lengths compare as numbers")
		assert.False(t, adv("short", 9))
	})
	t.Run("KeysMayHoldAnyBytes", func(t *testing.T) {
		keys := []string{"a\x00b", "{tenant}:order/1", "a}{b", "%7B", "", string([]byte{0xff, 0xfe})}
		for i, k := range keys {
			require.True(t, adv(k, uint64(i+1)), "key %q", k)
		}
		for i, k := range keys {
			assert.Equal(t, uint64(i+1), last(k), "key %q", k)
		}
	})
	t.Run("ConcurrentAdvancesToOneSequenceExactlyOneStores", func(t *testing.T) {
		for round := 1; round <= 10; round++ {
			var wins atomic.Int32
			var wg sync.WaitGroup
			for g := 0; g < 8; g++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					ok, err := seqs.Advance(ctx, "same", uint64(round))
					if assert.NoError(t, err) && ok {
						wins.Add(1)
					}
				}()
			}
			wg.Wait()
			require.Equal(t, int32(1), wins.Load(), "round %d", round)
		}
	})
}

// The keys follow the documented layout: prefix:kind:{name}, with braces
// and percent signs in names escaped so the hash tag is the whole name, and
// the claim's expiry is the lease, then the TTL.
func TestKeyLayout(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	c := s.Client()
	p := s.Prefix()

	claim, err := s.Idempotency().Begin(ctx, "sub\x00{src}%", 30*time.Second)
	require.NoError(t, err)
	key := p + ":idem:{sub\x00%7Bsrc%7D%25}"
	v, err := c.Get(ctx, key).Result()
	require.NoError(t, err, "the claim is at %q", key)
	assert.Equal(t, "p:"+claim.Token, v)
	ttl, err := c.PTTL(ctx, key).Result()
	require.NoError(t, err)
	assert.InDelta(t, 30*time.Second, ttl, float64(2*time.Second), "the key expires with the lease")
	require.NoError(t, s.Idempotency().Complete(ctx, "sub\x00{src}%", claim.Token, time.Hour))
	v, err = c.Get(ctx, key).Result()
	require.NoError(t, err)
	assert.Equal(t, "c", v)
	ttl, err = c.PTTL(ctx, key).Result()
	require.NoError(t, err)
	assert.InDelta(t, time.Hour, ttl, float64(2*time.Second), "a completed record expires after the TTL")

	_, err = s.Sequences().Advance(ctx, "order-1", 7)
	require.NoError(t, err)
	assert.Equal(t, "7", c.Get(ctx, p+":seq:{order-1}").Val())
	require.NoError(t, s.Checkpoints().SaveCheckpoint(ctx, "projection", 42))
	assert.Equal(t, "42", c.Get(ctx, p+":checkpoint:{projection}").Val())
	lease, err := s.Leader().TryAcquire(ctx, "relay", "a", time.Minute)
	require.NoError(t, err)
	assert.Equal(t, "a", c.HGet(ctx, p+":leader:{relay}:lease", "holder").Val())
	tok, err := c.Get(ctx, p+":leader:{relay}:token").Int64()
	require.NoError(t, err)
	assert.Equal(t, lease.Token, tok)
}

func TestOpenRefusesMisconfiguration(t *testing.T) {
	ctx := context.Background()
	_, err := redis.Open(ctx, "http://localhost:6379", redis.Options{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "redis: ")

	_, err = redis.Open(ctx, "redis://:secret@127.0.0.1:1/0", redis.Options{})
	require.Error(t, err, "nothing listens on port 1")
	assert.Contains(t, err.Error(), "open redis://:xxxxx@127.0.0.1:1/0")
	assert.NotContains(t, err.Error(), "secret", "the password is not in the message")

	url := serverURL(t)
	_, err = redis.Open(ctx, url, redis.Options{Prefix: "a{b}"})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
	assert.Contains(t, err.Error(), "brace")

	_, err = redis.New(ctx, nil, redis.Options{})
	require.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

// A closed store's calls fail with crossbus.ErrClosed, naming the operation.
func TestClosedStore(t *testing.T) {
	url := serverURL(t)
	s, err := redis.Open(context.Background(), url, redis.Options{Prefix: "closed-" + claimtoken.New()[:8]})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	_, err = s.Idempotency().Begin(context.Background(), "k", time.Second)
	require.ErrorIs(t, err, crossbus.ErrClosed)
	assert.True(t, strings.HasPrefix(err.Error(), "redis: idempotency begin: "), err.Error())
	_, err = s.Sequences().Advance(context.Background(), "k", 1)
	require.ErrorIs(t, err, crossbus.ErrClosed)
	assert.False(t, errors.Is(err, crossbus.ErrLeaseLost))
}

// LatestWins and the idempotency middleware run on the store.
func TestMiddlewareOnTheStore(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	var applied []string
	var mu sync.Mutex
	h := crossbus.HandlerFunc(func(ctx context.Context, e *crossbus.Event) error {
		mu.Lock()
		applied = append(applied, e.ID())
		mu.Unlock()
		return nil
	})
	latest, err := sequence.LatestWins(s.Sequences())
	require.NoError(t, err)
	idem, err := crossbus.Idempotent(s.Idempotency(), crossbus.IdempotencyOptions{})
	require.NoError(t, err)
	handler := idem(latest(h))
	ev := func(id string, seq uint64) *crossbus.Event {
		e := crossbus.NewEvent("price.changed", "/prices")
		e.SetID(id)
		crossbus.SetPartitionKey(&e, "sku-1")
		e.SetExtension(crossbus.ExtSequence, sequence.Format(seq))
		return &e
	}
	for _, e := range []*crossbus.Event{ev("a", 1), ev("c", 3), ev("b", 2), ev("c", 3)} {
		require.NoError(t, handler.Handle(ctx, e))
	}
	assert.Equal(t, []string{"a", "c"}, applied, "b is stale, the second c a duplicate")
}

// New takes a *redis.Client or any redis.UniversalClient, and leaves it
// open on Close.
func TestNewOnAClient(t *testing.T) {
	url := serverURL(t)
	ctx := context.Background()
	o, err := goredis.ParseURL(url)
	require.NoError(t, err)
	for name, c := range map[string]goredis.UniversalClient{
		"Client":          goredis.NewClient(o),
		"UniversalClient": goredis.NewUniversalClient(&goredis.UniversalOptions{Addrs: []string{o.Addr}, DB: o.DB}),
	} {
		t.Run(name, func(t *testing.T) {
			defer c.Close()
			s, err := redis.New(ctx, c, redis.Options{Prefix: "new-" + claimtoken.New()[:8]})
			require.NoError(t, err)
			defer deleteKeys(t, c, s.Prefix()+":*")
			claim, err := s.Idempotency().Begin(ctx, "k", time.Minute)
			require.NoError(t, err)
			assert.Equal(t, crossbus.ClaimNew, claim.Status)
			require.NoError(t, s.Close())
			require.NoError(t, c.Ping(ctx).Err(), "the client stays open")
		})
	}
}
