package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossbus/crossbus/sequence"
)

// SequenceStore is a sequence.Store in Redis, for LatestWins and
// Resequence across processes: one string key per partition key holding the
// last applied sequence in decimal. Advance is a Lua script that compares
// the numbers as decimal strings (length first), since a Lua number holds
// only 53 bits and sequences are uint64. Get it with Store.Sequences.
type SequenceStore struct {
	s *Store
}

var _ sequence.Store = (*SequenceStore)(nil)

// Sequences returns the sequence store.
func (s *Store) Sequences() *SequenceStore { return &SequenceStore{s: s} }

// seqAdvance: 1 when ARGV[1] is stored (it is greater than the stored
// number, or none is stored), else 0. Both are decimal without leading
// zeros, so the longer is greater, and equal lengths compare as text.
var seqAdvance = goredis.NewScript(`
local cur = redis.call('GET', KEYS[1])
local new = ARGV[1]
if cur and (#cur > #new or (#cur == #new and cur >= new)) then
	return 0
end
redis.call('SET', KEYS[1], new)
return 1
`)

// Last implements sequence.Store.
func (q *SequenceStore) Last(ctx context.Context, key string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr("last sequence", err)
	}
	v, err := q.s.client.Get(ctx, q.s.key("seq", key)).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis: last sequence: %w", wrapErr(err))
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: last sequence of %q: stored value %q is not a sequence: %w", key, v, err)
	}
	return n, nil
}

// Advance implements sequence.Store.
func (q *SequenceStore) Advance(ctx context.Context, key string, seq uint64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, ctxErr("advance sequence", err)
	}
	n, err := toInt(q.s.batch.run(ctx, seqAdvance, []string{q.s.key("seq", key)}, strconv.FormatUint(seq, 10)))
	if err != nil {
		return false, fmt.Errorf("redis: advance sequence: %w", wrapErr(err))
	}
	return n == 1, nil
}
