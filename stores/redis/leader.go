package redis

import (
	"context"
	"fmt"
	"strconv"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossbus/crossbus/patterns/leader"
)

// LeaderStore is a leader.Store in Redis. A lease is a hash (holder,
// token) that expires with the lease (PEXPIRE, Redis's clock), beside a
// counter that hands out the tokens and never expires; both keys carry the
// lease name as their hash tag, so one script changes them together, in
// a Cluster too. A new term takes the next token from the counter, so
// tokens only rise as long as the counter survives: run Redis with
// persistence (appendonly) when fencing relies on them. Get it with
// Store.Leader.
type LeaderStore struct {
	s *Store
}

var _ leader.Store = (*LeaderStore)(nil)

// Leader returns the leader lease store.
func (s *Store) Leader() *LeaderStore { return &LeaderStore{s: s} }

// leaseAcquire: KEYS[1] the lease, KEYS[2] the token counter; ARGV[1] the
// holder, ARGV[2] the ttl in ms. It replies {holder, token, ms left}: the
// lease as it now is ("" and the last token when free).
var leaseAcquire = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
if cur[1] then
	if cur[1] == ARGV[1] then
		redis.call('PEXPIRE', KEYS[1], ARGV[2])
		return {cur[1], cur[2], tonumber(ARGV[2])}
	end
	return {cur[1], cur[2], redis.call('PTTL', KEYS[1])}
end
local token = string.format('%d', redis.call('INCR', KEYS[2]))
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'token', token)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {ARGV[1], token, tonumber(ARGV[2])}
`)

// leaseRelease: 1 when ARGV[1] holds the lease with token ARGV[2] (it is
// deleted; the counter stays), else 0.
var leaseRelease = goredis.NewScript(`
local cur = redis.call('HMGET', KEYS[1], 'holder', 'token')
if cur[1] == ARGV[1] and cur[2] == ARGV[2] then
	redis.call('DEL', KEYS[1])
	return 1
end
return 0
`)

func (l *LeaderStore) keys(name string) []string {
	k := l.s.key("leader", name)
	return []string{k + ":lease", k + ":token"}
}

// TryAcquire implements leader.Store.
func (l *LeaderStore) TryAcquire(ctx context.Context, name, holder string, ttl time.Duration) (leader.Lease, error) {
	if err := leader.ValidateLease(name, holder, ttl); err != nil {
		return leader.Lease{}, err
	}
	if err := ctx.Err(); err != nil {
		return leader.Lease{}, ctxErr(fmt.Sprintf("acquire lease %q", name), err)
	}
	sent := time.Now()
	v, err := l.s.batch.run(ctx, leaseAcquire, l.keys(name), holder, millis(ttl))
	if err != nil {
		return leader.Lease{}, fmt.Errorf("redis: acquire lease %q: %w", name, wrapErr(err))
	}
	reply, ok := v.([]any)
	if !ok || len(reply) != 3 {
		return leader.Lease{}, fmt.Errorf("redis: acquire lease %q: unexpected reply %v", name, v)
	}
	lease := leader.Lease{Name: name}
	lease.Holder, _ = reply[0].(string)
	tok, _ := reply[1].(string)
	if lease.Token, err = strconv.ParseInt(tok, 10, 64); err != nil {
		return leader.Lease{}, fmt.Errorf("redis: acquire lease %q: token %q: %w", name, tok, err)
	}
	if left, ok := reply[2].(int64); ok && left > 0 {
		lease.Expires = sent.Add(time.Duration(left) * time.Millisecond)
	}
	return lease, nil
}

// Release implements leader.Store.
func (l *LeaderStore) Release(ctx context.Context, name, holder string, token int64) error {
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("release lease %q", name), err)
	}
	n, err := toInt(l.s.batch.run(ctx, leaseRelease, l.keys(name), holder, strconv.FormatInt(token, 10)))
	if err != nil {
		return fmt.Errorf("redis: release lease %q: %w", name, wrapErr(err))
	}
	if n == 0 {
		return fmt.Errorf("redis: release lease %q by %q (token %d): %w", name, holder, token, leader.ErrNotHeld)
	}
	return nil
}
