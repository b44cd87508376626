package redis

import (
	"context"
	"fmt"
	"sync"

	goredis "github.com/redis/go-redis/v9"
)

// batcher sends the scripts of concurrent callers to Redis together, in one
// pipeline (group commit): while Options.Pipelines pipelines are in flight,
// further calls queue, and the next pipeline carries every call queued by
// then. An idle store sends a call at once, so batching adds no latency; a
// busy one makes one round trip, and one read and one write on the server,
// for many calls. Each call is still its own script, atomic on its own key:
// batching changes the packaging, not the semantics.
type batcher struct {
	client goredis.UniversalClient
	limit  int

	mu      sync.Mutex
	queue   []*call
	spare   []*call // the previous batch's slice, reused
	running int     // pipelines in flight
}

type call struct {
	script *goredis.Script // nil: args is a command
	keys   []string
	args   []any
	cmd    *goredis.Cmd
	done   chan struct{}
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// run runs script on keys with args, batched with concurrent calls, and
// returns its result. When ctx ends first it returns ctx's error; the script
// may still run.
func (b *batcher) run(ctx context.Context, script *goredis.Script, keys []string, args ...any) (any, error) {
	if b.limit <= 0 {
		return script.Run(ctx, b.client, keys, args...).Result()
	}
	return b.queued(ctx, script, keys, args)
}

// do runs the command args, batched with concurrent calls, and returns its
// result, like run.
func (b *batcher) do(ctx context.Context, args ...any) (any, error) {
	if b.limit <= 0 {
		return b.client.Do(ctx, args...).Result()
	}
	return b.queued(ctx, nil, nil, args)
}

func (b *batcher) queued(ctx context.Context, script *goredis.Script, keys []string, args []any) (any, error) {
	c := callPool.Get().(*call)
	c.script, c.keys, c.args = script, keys, args
	b.mu.Lock()
	b.queue = append(b.queue, c)
	lead := b.running < b.limit
	if lead {
		b.running++
	}
	b.mu.Unlock()
	if lead {
		b.lead()
	}
	select {
	case <-c.done:
		v, err := c.cmd.Result()
		*c = call{done: c.done}
		callPool.Put(c)
		return v, err
	case <-ctx.Done():
		// The call is still queued or in flight; its pipeline will finish
		// it, and the pool never sees it again.
		return nil, ctx.Err()
	}
}

// lead sends one batch from the caller's goroutine, then hands the rest of
// the queue to a goroutine of its own, so no caller waits for other callers'
// batches.
func (b *batcher) lead() {
	if !b.sendOne() {
		return
	}
	b.mu.Lock()
	more := len(b.queue) > 0
	if !more {
		b.running--
	}
	b.mu.Unlock()
	if more {
		go func() {
			for b.sendOne() {
			}
		}()
	}
}

// sendOne sends the queued calls as one pipeline. It reports false (and
// gives up its place among the running pipelines) when the queue was empty.
func (b *batcher) sendOne() bool {
	b.mu.Lock()
	batch := b.queue
	if len(batch) == 0 {
		b.running--
		b.mu.Unlock()
		return false
	}
	b.queue, b.spare = b.spare[:0], nil
	b.mu.Unlock()

	// The calls' own contexts only bound how long their callers wait; the
	// pipeline runs to completion within the client's timeouts, so a
	// cancelled caller does not fail the others.
	ctx := context.Background()
	if len(batch) == 1 {
		// Alone: a plain command costs less than a pipeline of one.
		c := batch[0]
		if c.script == nil {
			c.cmd = b.client.Do(ctx, c.args...)
		} else {
			c.cmd = c.script.Run(ctx, b.client, c.keys, c.args...)
		}
		c.done <- struct{}{}
		b.recycle(batch)
		return true
	}
	_, _ = b.client.Pipelined(ctx, func(p goredis.Pipeliner) error {
		for _, c := range batch {
			if c.script == nil {
				c.cmd = p.Do(ctx, c.args...)
			} else {
				c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
			}
		}
		return nil
	})
	for _, c := range batch {
		if err := c.cmd.Err(); err != nil && c.script != nil && goredis.HasErrorPrefix(err, "NOSCRIPT") {
			// The server lost the script (restart, failover, SCRIPT
			// FLUSH): EVAL loads it again.
			c.cmd = c.script.Run(ctx, b.client, c.keys, c.args...)
		}
		c.done <- struct{}{}
	}
	b.recycle(batch)
	return true
}

// recycle keeps a sent batch's slice for a later queue.
func (b *batcher) recycle(batch []*call) {
	clear(batch)
	b.mu.Lock()
	if b.spare == nil {
		b.spare = batch[:0]
	}
	b.mu.Unlock()
}

// toInt reads a script's integer reply.
func toInt(v any, err error) (int64, error) {
	if err != nil {
		return 0, err
	}
	n, ok := v.(int64)
	if !ok {
		return 0, fmt.Errorf("script replied %T %v, not an integer", v, v)
	}
	return n, nil
}
