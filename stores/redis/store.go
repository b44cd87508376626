package redis

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossbus/crossbus"
)

// DefaultPrefix starts every key unless Options.Prefix says otherwise.
const DefaultPrefix = "crossbus"

// Options configure a Store. The zero value is valid.
type Options struct {
	// Prefix starts every key the store writes (default DefaultPrefix), so
	// several services or environments can share one Redis. It must not
	// contain '{' or '}': the part of a key in braces is its hash tag.
	Prefix string
	// Pipelines bounds the pipelines of batched calls in flight at once
	// (default 2). Scripts that callers run concurrently while that many
	// are in flight wait and go together in the next pipeline, so a busy
	// store makes one round trip for many calls; an idle one sends each
	// call at once. Negative turns batching off: every call is its own
	// round trip.
	Pipelines int
}

// Store holds crossbus's state in one Redis deployment (a single server,
// Sentinel or Cluster): the idempotency store, LatestWins sequence state,
// projection checkpoints and leader leases, one view each. It is safe for
// concurrent use.
type Store struct {
	client goredis.UniversalClient
	prefix string
	owned  bool // Open made the client; Close closes it
	batch  *batcher
	// setNXGet: the server takes SET with both NX and GET (Redis 7.0 on).
	setNXGet bool
}

// Open connects to the Redis at rawURL (redis://[user:password@]host:port/db,
// rediss:// for TLS, unix:///path/to/socket?db=N), checks that it answers,
// and returns a Store that owns the connection pool: Close closes it. For a
// Cluster, Sentinel or a client configured in code, use New.
func Open(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	o, err := goredis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("redis: %w: URL %s: %w", crossbus.ErrInvalidOption, redact(rawURL), err)
	}
	client := goredis.NewClient(o)
	s, err := newStore(ctx, client, opts, "open "+redact(rawURL))
	if err != nil {
		_ = client.Close()
		return nil, err
	}
	s.owned = true
	return s, nil
}

// New returns a Store on client: a *redis.Client, *redis.ClusterClient, a
// failover (Sentinel) client, or any other redis.UniversalClient. It checks
// that the server answers (PING). Close leaves the client open.
func New(ctx context.Context, client goredis.UniversalClient, opts Options) (*Store, error) {
	if client == nil {
		return nil, fmt.Errorf("redis: %w: nil client", crossbus.ErrInvalidOption)
	}
	return newStore(ctx, client, opts, "connect")
}

func newStore(ctx context.Context, client goredis.UniversalClient, opts Options, what string) (*Store, error) {
	prefix := cmp.Or(opts.Prefix, DefaultPrefix)
	if strings.ContainsAny(prefix, "{}") {
		return nil, fmt.Errorf("redis: %w: key prefix %q contains a brace (braces mark a key's hash tag)", crossbus.ErrInvalidOption, prefix)
	}
	if err := client.Ping(ctx).Err(); err != nil {
		return nil, fmt.Errorf("redis: %s: %w", what, wrapErr(err))
	}
	pipelines := cmp.Or(opts.Pipelines, 2)
	s := &Store{client: client, prefix: prefix, batch: &batcher{client: client, limit: pipelines}}
	// Does the server take SET with both NX and GET (Redis 7.0 on)? The
	// probe key expires at once.
	probe := s.key("probe", "set-nx-get")
	err := client.Do(ctx, "set", probe, "1", "nx", "get", "px", 1).Err()
	s.setNXGet = err == nil || errors.Is(err, goredis.Nil)
	return s, nil
}

// Client returns the Redis client the store uses.
func (s *Store) Client() goredis.UniversalClient { return s.client }

// Prefix returns the key prefix.
func (s *Store) Prefix() string { return s.prefix }

// Close closes the connection pool if Open made it; a Store from New leaves
// its client to the caller.
func (s *Store) Close() error {
	if !s.owned {
		return nil
	}
	return s.client.Close()
}

// key returns prefix:kind:{name}: name, escaped so that it holds no brace,
// is the key's hash tag. Keys of one name (a leader's lease and its token
// counter) therefore share a Cluster slot, and records of different names
// spread over the slots.
func (s *Store) key(kind, name string) string {
	var b strings.Builder
	b.Grow(len(s.prefix) + len(kind) + len(name) + 4)
	b.WriteString(s.prefix)
	b.WriteByte(':')
	b.WriteString(kind)
	b.WriteString(":{")
	escapeTag(&b, name)
	b.WriteByte('}')
	return b.String()
}

// escapeTag writes name with '%', '{' and '}' percent-encoded, so the hash
// tag is exactly the (escaped) name and two names never share a key.
func escapeTag(b *strings.Builder, name string) {
	if !strings.ContainsAny(name, "%{}") {
		b.WriteString(name)
		return
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; c {
		case '%':
			b.WriteString("%25")
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		default:
			b.WriteByte(c)
		}
	}
}

// wrapErr marks errors of a closed client with crossbus.ErrClosed.
func wrapErr(err error) error {
	if errors.Is(err, goredis.ErrClosed) {
		return fmt.Errorf("%w: %w", crossbus.ErrClosed, err)
	}
	return err
}

// redact hides a password in a URL for error messages.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

// millis converts a duration to whole milliseconds, rounded up and at least
// 1 (Redis refuses an expiry of 0).
func millis(d time.Duration) int64 {
	if d <= time.Millisecond {
		return 1
	}
	return int64((d + time.Millisecond - 1) / time.Millisecond)
}

// ctxErr names the operation that the caller's context ended.
func ctxErr(op string, err error) error {
	return fmt.Errorf("redis: %s: %w", op, err)
}
