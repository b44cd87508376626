package chain_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus"
	"github.com/crossbus/crossbus/patterns/chain"
)

type order struct {
	ID    string `json:"id"`
	Total int    `json:"total"`
}

func orderChain() *chain.Definition {
	steps := []chain.Step{}
	for _, n := range []string{"payment", "inventory", "shipping", "email"} {
		steps = append(steps, chain.Step{Name: n, Retry: fastRetry})
	}
	return &chain.Definition{Name: "order", Steps: steps}
}

func TestChainRunsEveryStepInOrderWithEarlierOutputs(t *testing.T) {
	r := newRuns()
	def := orderChain()
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			var o order
			if err := in.Decode(&o); err != nil {
				return nil, err
			}
			return map[string]any{"charge": "ch_" + o.ID, "amount": o.Total}, nil
		}}),
		"inventory": counted(r, "inventory", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			var pay struct {
				Charge string `json:"charge"`
			}
			if err := in.Output("payment", &pay); err != nil {
				return nil, err
			}
			return "reserved for " + pay.Charge, nil
		}}),
		"shipping": counted(r, "shipping", chain.Handler{Do: ok("label-1")}),
		"email":    counted(r, "email", chain.Handler{Do: ok(nil)}),
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	started, err := e.coord.Begin(context.Background(), "o-1", order{ID: "o-1", Total: 42})
	require.NoError(t, err)
	assert.Equal(t, chain.StatusRunning, started.Status)
	assert.Equal(t, "payment", started.Step)

	inst := wait(t, e.coord, "o-1")
	assert.Equal(t, chain.StatusCompleted, inst.Status)
	assert.NoError(t, inst.Err())
	assert.Equal(t, []string{"payment", "inventory", "shipping", "email"}, inst.Completed)
	assert.Equal(t, []string{"payment", "inventory", "shipping", "email"}, r.completionOrder())
	var inv string
	require.NoError(t, inst.Output("inventory", &inv))
	assert.Equal(t, "reserved for ch_o-1", inv)
	assert.JSONEq(t, "null", string(inst.Outputs["email"]))
	assert.Empty(t, inst.Step)
	for _, s := range inst.Completed {
		assert.Equal(t, 1, r.count(s), "step %s ran once", s)
	}
}

func TestChainRetriesWithBackoffThenSucceeds(t *testing.T) {
	r := newRuns()
	def := orderChain()
	def.Steps[1].Retry = chain.RetryPolicy{MaxAttempts: 4, InitialInterval: 40 * time.Millisecond, BackoffRate: 2, MaxDelay: time.Second}
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: ok(1)}),
		"inventory": counted(r, "inventory", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			if in.Attempt < 3 {
				return nil, fmt.Errorf("warehouse busy (attempt %d)", in.Attempt)
			}
			return "ok", nil
		}}),
		"shipping": counted(r, "shipping", chain.Handler{Do: ok(1)}),
		"email":    counted(r, "email", chain.Handler{Do: ok(1)}),
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-1", order{ID: "o-1"})
	require.NoError(t, err)
	inst := wait(t, e.coord, "o-1")
	assert.Equal(t, chain.StatusCompleted, inst.Status)
	assert.Equal(t, 3, r.count("inventory"))
	r.mu.Lock()
	times := r.times["inventory"]
	r.mu.Unlock()
	require.Len(t, times, 3)
	assert.GreaterOrEqual(t, times[1].Sub(times[0]), 40*time.Millisecond, "first retry waits the initial interval")
	assert.GreaterOrEqual(t, times[2].Sub(times[1]), 80*time.Millisecond, "the second waits interval x backoff rate")
}

func TestChainNonRetryableFailureCompensatesInReverseOrder(t *testing.T) {
	r := newRuns()
	def := orderChain()
	def.Steps[2].Retry = chain.RetryPolicy{MaxAttempts: 5, InitialInterval: time.Millisecond, NonRetryable: []string{"shipping.NoCarrier"}}
	var refundSaw string
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: ok("ch_1"), Undo: func(ctx context.Context, in *chain.Input) error {
			return in.Output("payment", &refundSaw)
		}}),
		"inventory": counted(r, "inventory", chain.Handler{Do: ok("res_1"), Undo: undoOK}),
		"shipping": counted(r, "shipping", chain.Handler{Do: func(context.Context, *chain.Input) (any, error) {
			return nil, chain.Fail("shipping.NoCarrier", errors.New("no carrier serves the address"))
		}, Undo: undoOK}),
		"email": counted(r, "email", chain.Handler{Do: ok(nil)}),
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-2", order{ID: "o-2"})
	require.NoError(t, err)
	inst := wait(t, e.coord, "o-2")
	assert.Equal(t, chain.StatusCompensated, inst.Status)
	assert.Equal(t, 1, r.count("shipping"), "a non-retryable class is not retried")
	assert.Equal(t, 0, r.count("undo:shipping"), "the failed step is not compensated")
	assert.Equal(t, 0, r.count("email"))
	assert.Equal(t, []string{"payment", "inventory", "undo:inventory", "undo:payment"}, r.completionOrder())
	assert.Equal(t, "ch_1", refundSaw, "a compensation sees the output of the step it undoes")
	require.Len(t, inst.Errors, 1)
	assert.Equal(t, "shipping", inst.Errors[0].Step)
	assert.Equal(t, "shipping.NoCarrier", inst.Errors[0].Class)
	assert.True(t, errors.Is(inst.Err(), chain.Class("shipping.NoCarrier")))
	assert.Contains(t, inst.Err().Error(), "no carrier serves the address")
}

func TestChainCompensationFailuresAreAggregated(t *testing.T) {
	r := newRuns()
	def := orderChain()
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: ok(1), Undo: undoOK}),
		"inventory": counted(r, "inventory", chain.Handler{Do: ok(1), Undo: func(context.Context, *chain.Input) error {
			return crossbus.Permanent(errors.New("restock service gone"))
		}}),
		"shipping": counted(r, "shipping", chain.Handler{Do: func(context.Context, *chain.Input) (any, error) {
			return nil, errors.New("carrier down")
		}}),
		"email": counted(r, "email", chain.Handler{Do: ok(nil)}),
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-3", nil)
	require.NoError(t, err)
	inst := wait(t, e.coord, "o-3")
	assert.Equal(t, chain.StatusCompensationFailed, inst.Status)
	assert.Equal(t, 3, r.count("shipping"), "an ordinary error is retried up to MaxAttempts")
	assert.Equal(t, 1, r.completed("undo:payment"), "a failed compensation does not stop the earlier ones")
	require.Len(t, inst.Errors, 2)
	assert.Equal(t, chain.StepError{Step: "shipping", Attempt: 3, Class: chain.ClassError, Message: "carrier down"}, inst.Errors[0])
	assert.True(t, inst.Errors[1].Compensation)
	assert.Equal(t, "inventory", inst.Errors[1].Step)
	assert.Equal(t, chain.ClassPermanent, inst.Errors[1].Class)
	joined := inst.Err()
	assert.Contains(t, joined.Error(), "carrier down")
	assert.Contains(t, joined.Error(), "restock service gone")
	assert.True(t, errors.Is(joined, chain.Class(chain.ClassPermanent)))
}

func TestChainAttemptTimeoutIsRetried(t *testing.T) {
	r := newRuns()
	def := orderChain()
	def.Steps[0].AttemptTimeout = 100 * time.Millisecond
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			if in.Attempt == 1 {
				<-ctx.Done() // the attempt's deadline reaches the handler
				return nil, ctx.Err()
			}
			return "paid", nil
		}}),
		"inventory": counted(r, "inventory", chain.Handler{Do: ok(1)}),
		"shipping":  counted(r, "shipping", chain.Handler{Do: ok(1)}),
		"email":     counted(r, "email", chain.Handler{Do: ok(1)}),
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-4", nil)
	require.NoError(t, err)
	inst := wait(t, e.coord, "o-4")
	assert.Equal(t, chain.StatusCompleted, inst.Status)
	assert.Equal(t, 2, r.count("payment"))
}

// TestChainUnansweredAttemptTimesOut: a worker that never answers (its
// process hangs) is timed out by the coordinator, which retries.
func TestChainUnansweredAttemptTimesOut(t *testing.T) {
	r := newRuns()
	def := orderChain()
	def.Steps[0].AttemptTimeout = 100 * time.Millisecond
	def.Steps[0].Retry = chain.RetryPolicy{MaxAttempts: 2, InitialInterval: time.Millisecond}
	release := make(chan struct{})
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			<-release // ignores its deadline
			return nil, errors.New("too late")
		}, Undo: undoOK}),
		"inventory": counted(r, "inventory", chain.Handler{Do: ok(1)}),
		"shipping":  counted(r, "shipping", chain.Handler{Do: ok(1)}),
		"email":     counted(r, "email", chain.Handler{Do: ok(1)}),
	}
	bus := openBus(t)
	c, w := start(t, bus, def, chain.NewMemoryStore(), handlers, chain.WorkerOptions{RouteOptions: []crossbus.RouteOption{crossbus.WithConcurrency(4)}}, chain.CoordinatorOptions{})
	_, err := c.Begin(context.Background(), "o-5", nil)
	require.NoError(t, err)
	inst := wait(t, c, "o-5")
	assert.Equal(t, chain.StatusCompensated, inst.Status)
	require.Len(t, inst.Errors, 1)
	assert.Equal(t, chain.ClassTimeout, inst.Errors[0].Class)
	assert.Equal(t, 2, inst.Errors[0].Attempt)
	assert.Equal(t, 0, r.count("undo:payment"), "payment never completed, so it is not compensated")
	close(release) // the hung handlers return; Close waits for them
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Close(ctx)
	_ = w.Close(ctx)
	_ = bus.Close(ctx)
}

func TestChainTotalTimeoutCompensatesCompletedSteps(t *testing.T) {
	r := newRuns()
	def := orderChain()
	def.Timeout = 300 * time.Millisecond
	handlers := map[string]chain.Handler{
		"payment": counted(r, "payment", chain.Handler{Do: ok(1), Undo: undoOK}),
		"inventory": counted(r, "inventory", chain.Handler{Do: func(ctx context.Context, in *chain.Input) (any, error) {
			<-ctx.Done() // the chain's deadline reaches the step
			return nil, ctx.Err()
		}}),
		"shipping": counted(r, "shipping", chain.Handler{Do: ok(1)}),
		"email":    counted(r, "email", chain.Handler{Do: ok(1)}),
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-6", nil)
	require.NoError(t, err)
	inst := wait(t, e.coord, "o-6")
	assert.Equal(t, chain.StatusCompensated, inst.Status)
	assert.Equal(t, 1, r.completed("undo:payment"))
	assert.True(t, errors.Is(inst.Err(), chain.Class(chain.ClassChainTimeout)) || errors.Is(inst.Err(), chain.Class(chain.ClassTimeout)),
		"the chain failed by a timeout: %v", inst.Err())
}

func TestChainPermanentAndPanicAreNotRetried(t *testing.T) {
	for _, tc := range []struct {
		name  string
		do    func(context.Context, *chain.Input) (any, error)
		class string
	}{
		{"Permanent", func(context.Context, *chain.Input) (any, error) {
			return nil, crossbus.Permanent(errors.New("bad order"))
		}, chain.ClassPermanent},
		{"Panic", func(context.Context, *chain.Input) (any, error) { panic("nil map") }, chain.ClassPanic},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newRuns()
			def := orderChain()
			def.Steps[0].Retry.NonRetryable = []string{chain.ClassPanic}
			handlers := map[string]chain.Handler{"payment": counted(r, "payment", chain.Handler{Do: tc.do}),
				"inventory": {Do: ok(1)}, "shipping": {Do: ok(1)}, "email": {Do: ok(1)}}
			e := newEnv(t, def, chain.NewMemoryStore(), handlers)
			_, err := e.coord.Begin(context.Background(), "o", nil)
			require.NoError(t, err)
			inst := wait(t, e.coord, "o")
			assert.Equal(t, chain.StatusCompensated, inst.Status)
			assert.Equal(t, 1, r.count("payment"))
			require.Len(t, inst.Errors, 1)
			assert.Equal(t, tc.class, inst.Errors[0].Class)
		})
	}
}

// TestChainDuplicateCommandsAndResults: every command and every result is
// delivered twice; each step still completes once and the chain once.
func TestChainDuplicateCommandsAndResults(t *testing.T) {
	r := newRuns()
	def := orderChain()
	handlers := map[string]chain.Handler{}
	for _, s := range def.Steps {
		handlers[s.Name] = counted(r, s.Name, chain.Handler{Do: ok(s.Name + "-out")})
	}
	base := openBus(t)
	bus := &dupBus{Bus: base, types: map[string]bool{chain.CommandType: true, chain.ResultType: true}}
	var mu sync.Mutex
	var changes []string
	c, w := start(t, bus, def, chain.NewMemoryStore(), handlers, chain.WorkerOptions{}, chain.CoordinatorOptions{
		OnChange: func(inst *chain.Instance) {
			mu.Lock()
			changes = append(changes, fmt.Sprintf("%s:%s", inst.Status, inst.Step))
			mu.Unlock()
		},
	})
	defer func() {
		_ = c.Close(context.Background())
		_ = w.Close(context.Background())
		_ = base.Close(context.Background())
	}()
	_, err := c.Begin(context.Background(), "o-7", nil)
	require.NoError(t, err)
	inst := wait(t, c, "o-7")
	assert.Equal(t, chain.StatusCompleted, inst.Status)
	for _, s := range def.Steps {
		assert.Equal(t, 1, r.count(s.Name), "step %s ran once despite duplicate commands", s.Name)
	}
	time.Sleep(100 * time.Millisecond) // let the last duplicates arrive
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"running:payment", "running:inventory", "running:shipping", "running:email", "completed:"}, changes,
		"each step advanced the instance once despite duplicate results")
}

func TestChainGetShowsTheRunningStep(t *testing.T) {
	def := orderChain()
	entered := make(chan struct{})
	release := make(chan struct{})
	handlers := map[string]chain.Handler{
		"payment": {Do: ok("ch")},
		"inventory": {Do: func(ctx context.Context, in *chain.Input) (any, error) {
			close(entered)
			<-release
			return "res", nil
		}},
		"shipping": {Do: ok(1)}, "email": {Do: ok(1)},
	}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-8", order{ID: "o-8", Total: 5})
	require.NoError(t, err)
	<-entered
	got, err := e.coord.Get(context.Background(), "o-8")
	require.NoError(t, err)
	assert.Equal(t, chain.StatusRunning, got.Status)
	assert.Equal(t, "inventory", got.Step)
	assert.Equal(t, 1, got.Attempt)
	assert.Equal(t, chain.PhaseDispatched, got.Phase)
	assert.Equal(t, []string{"payment"}, got.Completed)
	assert.JSONEq(t, `{"id":"o-8","total":5}`, string(got.Input))
	close(release)
	assert.Equal(t, chain.StatusCompleted, wait(t, e.coord, "o-8").Status)
	_, err = e.coord.Get(context.Background(), "missing")
	assert.ErrorIs(t, err, chain.ErrNotFound)
}

func TestBeginIsOncePerID(t *testing.T) {
	def := orderChain()
	handlers := map[string]chain.Handler{"payment": {Do: ok(1)}, "inventory": {Do: ok(1)}, "shipping": {Do: ok(1)}, "email": {Do: ok(1)}}
	e := newEnv(t, def, chain.NewMemoryStore(), handlers)
	_, err := e.coord.Begin(context.Background(), "o-9", nil)
	require.NoError(t, err)
	_, err = e.coord.Begin(context.Background(), "o-9", nil)
	assert.ErrorIs(t, err, chain.ErrExists)
	_, err = e.coord.Begin(context.Background(), "", nil)
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestBeginBeforeStartFails(t *testing.T) {
	c, err := chain.NewCoordinator(orderChain(), openBus(t), chain.NewMemoryStore(), chain.CoordinatorOptions{})
	require.NoError(t, err)
	_, err = c.Begin(context.Background(), "x", nil)
	assert.ErrorContains(t, err, "before Start")
}

func TestDefinitionValidation(t *testing.T) {
	for name, def := range map[string]*chain.Definition{
		"NoName":          {Steps: []chain.Step{{Name: "a"}}},
		"NoSteps":         {Name: "c"},
		"UnnamedStep":     {Name: "c", Steps: []chain.Step{{}}},
		"DuplicateStep":   {Name: "c", Steps: []chain.Step{{Name: "a"}, {Name: "a"}}},
		"NegativeTimeout": {Name: "c", Timeout: -1, Steps: []chain.Step{{Name: "a"}}},
		"BadBackoff":      {Name: "c", Steps: []chain.Step{{Name: "a", Retry: chain.RetryPolicy{BackoffRate: 0.5}}}},
		"BadJitter":       {Name: "c", Steps: []chain.Step{{Name: "a", Retry: chain.RetryPolicy{Jitter: 2}}}},
		"NegativeAttempt": {Name: "c", Steps: []chain.Step{{Name: "a", AttemptTimeout: -time.Second}}},
	} {
		t.Run(name, func(t *testing.T) {
			assert.ErrorIs(t, def.Validate(), crossbus.ErrInvalidOption)
		})
	}
	_, err := chain.NewWorker(orderChain(), openBus(t), chain.NewMemoryStore(), map[string]chain.Handler{"nope": {Do: ok(1)}}, chain.WorkerOptions{})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
	_, err = chain.NewWorker(orderChain(), openBus(t), chain.NewMemoryStore(), map[string]chain.Handler{"payment": {}}, chain.WorkerOptions{})
	assert.ErrorIs(t, err, crossbus.ErrInvalidOption)
}

func TestRetryPolicy(t *testing.T) {
	p := chain.RetryPolicy{MaxAttempts: 4, InitialInterval: 100 * time.Millisecond, BackoffRate: 3, MaxDelay: time.Second, NonRetryable: []string{"x.Fatal"}}
	assert.Equal(t, 100*time.Millisecond, p.Delay(1))
	assert.Equal(t, 300*time.Millisecond, p.Delay(2))
	assert.Equal(t, 900*time.Millisecond, p.Delay(3))
	assert.Equal(t, time.Second, p.Delay(4), "capped by MaxDelay")
	assert.True(t, p.Retries(chain.ClassError, 3))
	assert.False(t, p.Retries(chain.ClassError, 4))
	assert.False(t, p.Retries("x.Fatal", 1))
	assert.False(t, p.Retries(chain.ClassPermanent, 1))
	def := chain.RetryPolicy{}
	assert.Equal(t, time.Second, def.Delay(1), "default initial interval")
	assert.Equal(t, 2*time.Second, def.Delay(2), "default backoff rate")
	assert.True(t, def.Retries(chain.ClassError, 2))
	assert.False(t, def.Retries(chain.ClassError, 3), "default 3 attempts")
	j := chain.RetryPolicy{InitialInterval: time.Second, Jitter: 0.5}
	for i := 0; i < 20; i++ {
		d := j.Delay(1)
		assert.True(t, d >= 500*time.Millisecond && d <= time.Second, "jittered delay %v", d)
	}
}

func TestClassOf(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errors.New("x"), chain.ClassError},
		{chain.Fail("card.Declined", errors.New("x")), "card.Declined"},
		{fmt.Errorf("wrapped: %w", chain.Fail("a.B", errors.New("x"))), "a.B"},
		{crossbus.Permanent(errors.New("x")), chain.ClassPermanent},
		{fmt.Errorf("slow: %w", context.DeadlineExceeded), chain.ClassTimeout},
	} {
		assert.Equal(t, tc.want, chain.ClassOf(tc.err), "%v", tc.err)
	}
	assert.Nil(t, chain.Fail("x", nil))
}
