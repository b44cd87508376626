package redis

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/sourcing"
)

// CheckpointStore is a sourcing.CheckpointStore in Redis: one string key
// per checkpoint name holding the position in decimal. It lets projections
// of an event store elsewhere (DynamoDB, say) keep their positions in the
// Redis they already use. Get it with Store.Checkpoints.
type CheckpointStore struct {
	s *Store
}

var _ sourcing.CheckpointStore = (*CheckpointStore)(nil)

// Checkpoints returns the checkpoint store.
func (s *Store) Checkpoints() *CheckpointStore { return &CheckpointStore{s: s} }

// Checkpoint implements sourcing.CheckpointStore.
func (c *CheckpointStore) Checkpoint(ctx context.Context, name string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, ctxErr(fmt.Sprintf("checkpoint %q", name), err)
	}
	v, err := c.s.client.Get(ctx, c.s.key("checkpoint", name)).Result()
	if errors.Is(err, goredis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("redis: checkpoint %q: %w", name, wrapErr(err))
	}
	p, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: checkpoint %q: stored value %q is not a position: %w", name, v, err)
	}
	return p, nil
}

// SaveCheckpoint implements sourcing.CheckpointStore.
func (c *CheckpointStore) SaveCheckpoint(ctx context.Context, name string, position uint64) error {
	if name == "" {
		return fmt.Errorf("%w: checkpoint name is empty", crossbus.ErrInvalidOption)
	}
	if err := ctx.Err(); err != nil {
		return ctxErr(fmt.Sprintf("save checkpoint %q", name), err)
	}
	if err := c.s.client.Set(ctx, c.s.key("checkpoint", name), strconv.FormatUint(position, 10), 0).Err(); err != nil {
		return fmt.Errorf("redis: save checkpoint %q: %w", name, wrapErr(err))
	}
	return nil
}
