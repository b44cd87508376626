package redis

import (
	"context"
	"errors"
	"fmt"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/internal/claimtoken"
)

// IdempotencyStore is a crossbus.IdempotencyStore in Redis. Each record is
// one string key whose value is "p:" and the claim token while a consumer
// holds it, or "c" once completed; the key's expiry (PEXPIRE) is the lease
// or the completed record's TTL, so Redis's clock alone decides when a
// lease ends and an expired record is simply gone. Every operation is one
// command on that key, atomic on the server: Begin is SET NX GET PX (a Lua
// script on servers before 7.0), so of concurrent Begins for a free key
// exactly one finds it free; Renew, Complete and Release are Lua scripts
// that act only while the record still holds the caller's token. Get it with
// Store.Idempotency.
type IdempotencyStore struct {
	s *Store
}

var _ crossbus.IdempotencyStore = (*IdempotencyStore)(nil)

// Idempotency returns the idempotency store.
func (s *Store) Idempotency() *IdempotencyStore { return &IdempotencyStore{s: s} }

// Begin on servers before 7.0, which refuse SET with both NX and GET: 0 = claimed (the value is now ARGV[1] for ARGV[2] ms), 1 = held by
// another consumer, 2 = completed.
var idemBegin = goredis.NewScript(`
local v = redis.call('GET', KEYS[1])
if v then
	if v == 'c' then return 2 end
	return 1
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 0
`)

// Renew: 1 when the value is still ARGV[1] (the lease is moved to ARGV[2]
// ms from now), else 0.
var idemRenew = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('PEXPIRE', KEYS[1], ARGV[2])
	return 1
end
return 0
`)

// Complete: 1 when the value is still ARGV[1] (it becomes 'c' for ARGV[2]
// ms), else 0.
var idemComplete = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('SET', KEYS[1], 'c', 'PX', ARGV[2])
	return 1
end
return 0
`)

// Release: 1 when the value is still ARGV[1] (the key is deleted), else 0.
var idemRelease = goredis.NewScript(`
if redis.call('GET', KEYS[1]) == ARGV[1] then
	redis.call('DEL', KEYS[1])
	return 1
end
return 0
`)

func held(token string) string { return "p:" + token }

// Begin implements crossbus.IdempotencyStore.
func (i *IdempotencyStore) Begin(ctx context.Context, key string, lease time.Duration) (crossbus.Claim, error) {
	if err := ctx.Err(); err != nil {
		return crossbus.Claim{}, ctxErr("idempotency begin", err)
	}
	token := claimtoken.New()
	k := i.s.key("idem", key)
	var status int64
	if i.s.setNXGet {
		// One native command: set the claim unless the key exists, and
		// reply the value that was there.
		v, err := i.s.batch.do(ctx, "set", k, held(token), "nx", "get", "px", millis(lease))
		switch {
		case errors.Is(err, goredis.Nil):
			status = 0
		case err != nil:
			return crossbus.Claim{}, fmt.Errorf("redis: idempotency begin: %w", wrapErr(err))
		case v == "c":
			status = 2
		default:
			status = 1
		}
	} else {
		n, err := toInt(i.s.batch.run(ctx, idemBegin, []string{k}, held(token), millis(lease)))
		if err != nil {
			return crossbus.Claim{}, fmt.Errorf("redis: idempotency begin: %w", wrapErr(err))
		}
		status = n
	}
	switch status {
	case 0:
		return crossbus.Claim{Status: crossbus.ClaimNew, Token: token}, nil
	case 2:
		return crossbus.Claim{Status: crossbus.ClaimCompleted}, nil
	}
	return crossbus.Claim{Status: crossbus.ClaimInProgress}, nil
}

// Renew implements crossbus.IdempotencyStore.
func (i *IdempotencyStore) Renew(ctx context.Context, key, token string, lease time.Duration) error {
	return i.run(ctx, "renew", idemRenew, key, token, millis(lease))
}

// Complete implements crossbus.IdempotencyStore.
func (i *IdempotencyStore) Complete(ctx context.Context, key, token string, ttl time.Duration) error {
	return i.run(ctx, "complete", idemComplete, key, token, millis(ttl))
}

// Release implements crossbus.IdempotencyStore.
func (i *IdempotencyStore) Release(ctx context.Context, key, token string) error {
	return i.run(ctx, "release", idemRelease, key, token)
}

// run runs one of the token-checked scripts; 0 means the token no longer
// holds the key.
func (i *IdempotencyStore) run(ctx context.Context, op string, script *goredis.Script, key, token string, args ...any) error {
	if err := ctx.Err(); err != nil {
		return ctxErr("idempotency "+op, err)
	}
	n, err := toInt(i.s.batch.run(ctx, script, []string{i.s.key("idem", key)}, append([]any{held(token)}, args...)...))
	if err != nil {
		return fmt.Errorf("redis: idempotency %s: %w", op, wrapErr(err))
	}
	if n == 0 {
		return fmt.Errorf("redis: idempotency %s: key %q: %w", op, key, crossbus.ErrLeaseLost)
	}
	return nil
}
