package storetest

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
)

// Inbox is what TestInboxStore runs against: a crossbus.InboxStore and a way
// to write and count an application effect in the same database.
type Inbox struct {
	Store crossbus.InboxStore
	// Apply records one effect for key through the transaction that ctx
	// carries; ctx is the one CompleteInTx passes to its fn.
	Apply func(ctx context.Context, key string) error
	// Effects counts the committed effects of key, outside any
	// transaction.
	Effects func(ctx context.Context, key string) (int, error)
}

// TestInboxStore checks the crossbus.InboxStore contract, the transactional
// inbox: what the handler (fn) writes through the store's transaction
// commits together with the key's completion, or not at all. newInbox
// returns an empty store for each subtest. It runs TestIdempotencyStore's
// leases and TTLs, so stores must honour sub-second ones.
//
// The guarantees, one subtest each: fn's writes and the completion commit
// together; a failing fn rolls back, its error comes back unchanged and the
// claim stays for the caller to release; a lease that ran out, or was taken
// by another token, returns crossbus.ErrLeaseLost and leaves no write; a
// completed key cannot be completed again; a panic rolls back and leaves
// the store usable; the completed record expires after its TTL; fn's
// context keeps the caller's values; concurrent transactions on distinct
// keys and concurrent duplicates of one key each apply once.
func TestInboxStore(t *testing.T, newInbox func(t *testing.T) Inbox) {
	tests := cases[Inbox]{
		{"WritesAndCompletionCommitTogether", inboxCommit},
		{"HandlerErrorRollsBackAndKeepsTheClaim", inboxHandlerError},
		{"LeaseTakenByAnotherTokenRollsBack", inboxLeaseTaken},
		{"LeaseRunOutIsLeaseLost", inboxLeaseRunOut},
		{"UnknownKeyOrWrongTokenIsLeaseLost", inboxWrongToken},
		{"CompletedKeyCannotCommitAgain", inboxCompleteTwice},
		{"PanicRollsBackAndStoreStaysUsable", inboxPanic},
		{"CompletedRecordExpiresAfterTTL", inboxTTL},
		{"HandlerContextKeepsTheCallersValues", inboxContext},
		{"ConcurrentTransactionsOnDistinctKeys", inboxConcurrentKeys},
		{"ConcurrentDuplicatesApplyOnce", inboxConcurrentDuplicates},
	}
	tests.run(t, newInbox)
}

// inboxWait bounds one CompleteInTx call in the suite; a call that takes
// longer is reported as a deadlock instead of hanging the test binary.
const inboxWait = 10 * time.Second

// completeInTx calls CompleteInTx on a goroutine and returns its error, or
// the value fn panicked with.
func completeInTx(t *testing.T, in Inbox, key, token string, ttl time.Duration, fn func(ctx context.Context) error) (panicked any, err error) {
	t.Helper()
	type result struct {
		panicked any
		err      error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			r.panicked = recover()
			done <- r
		}()
		r.err = in.Store.CompleteInTx(context.Background(), key, token, ttl, fn)
	}()
	select {
	case r := <-done:
		return r.panicked, r.err
	case <-time.After(inboxWait):
		t.Fatalf("CompleteInTx(%q) did not return within %v: deadlock?", key, inboxWait)
		return nil, nil
	}
}

// apply is an fn that records key's effect.
func apply(in Inbox, key string) func(ctx context.Context) error {
	return func(ctx context.Context) error { return in.Apply(ctx, key) }
}

func effects(t *testing.T, in Inbox, key string) int {
	t.Helper()
	n, err := in.Effects(context.Background(), key)
	require.NoError(t, err)
	return n
}

func inboxCommit(t *testing.T, in Inbox) {
	ctx := context.Background()
	tok := mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", tok, idemLong, apply(in, "k1"))
	require.NoError(t, err)
	assert.Equal(t, 1, effects(t, in, "k1"), "the handler's write committed")
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, in.Store, "k1"), "and so did the completion")
	// The claim is settled: its token does nothing more.
	assert.ErrorIs(t, in.Store.Complete(ctx, "k1", tok, idemLong), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, in.Store.Release(ctx, "k1", tok), crossbus.ErrLeaseLost)
	assert.ErrorIs(t, in.Store.Renew(ctx, "k1", tok, idemLong), crossbus.ErrLeaseLost)
}

func inboxHandlerError(t *testing.T, in Inbox) {
	ctx := context.Background()
	boom := errors.New("handler failed")
	tok := mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", tok, idemLong, func(ctx context.Context) error {
		if err := in.Apply(ctx, "k1"); err != nil {
			return err
		}
		return boom
	})
	assert.Equal(t, boom, err, "fn's error is returned unchanged")
	assert.Equal(t, 0, effects(t, in, "k1"), "the handler's write rolled back")
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, in.Store, "k1"), "the claim is still held")

	require.NoError(t, in.Store.Release(ctx, "k1", tok), "its holder releases it")
	tok2 := mustClaim(t, in.Store, "k1", idemLong)
	_, err = completeInTx(t, in, "k1", tok2, idemLong, apply(in, "k1"))
	require.NoError(t, err, "the retry commits")
	assert.Equal(t, 1, effects(t, in, "k1"))
}

// inboxLeaseTaken: the holder's lease ran out and another consumer claimed
// the key; the old holder's transaction leaves nothing, and the new holder
// still commits.
func inboxLeaseTaken(t *testing.T, in Inbox) {
	old := mustClaim(t, in.Store, "k1", idemShort)
	time.Sleep(idemPast)
	cur := mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", old, idemLong, apply(in, "k1"))
	require.ErrorIs(t, err, crossbus.ErrLeaseLost)
	assert.Equal(t, 0, effects(t, in, "k1"), "the old holder's write rolled back")
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, in.Store, "k1"), "the new holder keeps the key")

	_, err = completeInTx(t, in, "k1", cur, idemLong, apply(in, "k1"))
	require.NoError(t, err)
	assert.Equal(t, 1, effects(t, in, "k1"))
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, in.Store, "k1"))
}

// inboxLeaseRunOut: a lease that ran out is lost even when no one claimed
// the key since.
func inboxLeaseRunOut(t *testing.T, in Inbox) {
	tok := mustClaim(t, in.Store, "k1", idemShort)
	time.Sleep(idemPast)
	_, err := completeInTx(t, in, "k1", tok, idemLong, apply(in, "k1"))
	require.ErrorIs(t, err, crossbus.ErrLeaseLost)
	assert.Equal(t, 0, effects(t, in, "k1"))
	mustClaim(t, in.Store, "k1", idemLong)
}

func inboxWrongToken(t *testing.T, in Inbox) {
	mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", "not-the-token", idemLong, apply(in, "k1"))
	assert.ErrorIs(t, err, crossbus.ErrLeaseLost)
	_, err = completeInTx(t, in, "never-begun", "x", idemLong, apply(in, "never-begun"))
	assert.ErrorIs(t, err, crossbus.ErrLeaseLost)
	assert.Equal(t, 0, effects(t, in, "k1"))
	assert.Equal(t, 0, effects(t, in, "never-begun"))
	assert.Equal(t, crossbus.ClaimInProgress, beginStatus(t, in.Store, "k1"))
}

// inboxCompleteTwice: a second transaction with the token of a completed
// claim (a duplicate that slipped past Begin) leaves no second effect.
func inboxCompleteTwice(t *testing.T, in Inbox) {
	tok := mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", tok, idemLong, apply(in, "k1"))
	require.NoError(t, err)
	_, err = completeInTx(t, in, "k1", tok, idemLong, apply(in, "k1"))
	assert.ErrorIs(t, err, crossbus.ErrLeaseLost)
	assert.Equal(t, 1, effects(t, in, "k1"))
}

func inboxPanic(t *testing.T, in Inbox) {
	tok := mustClaim(t, in.Store, "k1", idemLong)
	p, _ := completeInTx(t, in, "k1", tok, idemLong, func(ctx context.Context) error {
		if err := in.Apply(ctx, "k1"); err != nil {
			return err
		}
		panic("handler bug")
	})
	assert.Equal(t, "handler bug", p, "the panic reaches the caller")
	assert.Equal(t, 0, effects(t, in, "k1"), "the handler's write rolled back")
	// The store is not stuck in the abandoned transaction.
	require.NoError(t, in.Store.Release(context.Background(), "k1", tok))
	tok = mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", tok, idemLong, apply(in, "k1"))
	require.NoError(t, err)
	assert.Equal(t, 1, effects(t, in, "k1"))
}

func inboxTTL(t *testing.T, in Inbox) {
	tok := mustClaim(t, in.Store, "k1", idemLong)
	_, err := completeInTx(t, in, "k1", tok, idemShort, apply(in, "k1"))
	require.NoError(t, err)
	assert.Equal(t, crossbus.ClaimCompleted, beginStatus(t, in.Store, "k1"))
	time.Sleep(idemPast)
	mustClaim(t, in.Store, "k1", idemLong)
}

type inboxCtxKey struct{}

func inboxContext(t *testing.T, in Inbox) {
	tok := mustClaim(t, in.Store, "k1", idemLong)
	ctx := context.WithValue(context.Background(), inboxCtxKey{}, "caller's value")
	var got any
	err := in.Store.CompleteInTx(ctx, "k1", tok, idemLong, func(fctx context.Context) error {
		got = fctx.Value(inboxCtxKey{})
		return in.Apply(fctx, "k1")
	})
	require.NoError(t, err)
	assert.Equal(t, "caller's value", got, "fn's context derives from the caller's")
}

func inboxConcurrentKeys(t *testing.T, in Inbox) {
	const workers, perWorker = 8, 5
	var wg sync.WaitGroup
	errs := make(chan error, workers*perWorker)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < perWorker; i++ {
				key := fmt.Sprintf("w%d-k%d", w, i)
				c, err := in.Store.Begin(context.Background(), key, idemLong)
				if err == nil && c.Status != crossbus.ClaimNew {
					err = fmt.Errorf("Begin(%q) = %v", key, c.Status)
				}
				if err == nil {
					err = in.Store.CompleteInTx(context.Background(), key, c.Token, idemLong, apply(in, key))
				}
				if err != nil {
					errs <- err
				}
			}
		}()
	}
	waitGroup(t, &wg)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	for w := 0; w < workers; w++ {
		for i := 0; i < perWorker; i++ {
			assert.Equal(t, 1, effects(t, in, fmt.Sprintf("w%d-k%d", w, i)))
		}
	}
}

// inboxConcurrentDuplicates runs one key's handler from several consumers at
// once, each retrying while another holds the key, until it is completed.
func inboxConcurrentDuplicates(t *testing.T, in Inbox) {
	const consumers = 6
	var wg sync.WaitGroup
	errs := make(chan error, consumers)
	for c := 0; c < consumers; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				cl, err := in.Store.Begin(context.Background(), "dup", idemLong)
				if err != nil {
					errs <- err
					return
				}
				switch cl.Status {
				case crossbus.ClaimCompleted:
					return
				case crossbus.ClaimInProgress:
					time.Sleep(5 * time.Millisecond)
					continue
				}
				if err := in.Store.CompleteInTx(context.Background(), "dup", cl.Token, idemLong, apply(in, "dup")); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	waitGroup(t, &wg)
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	assert.Equal(t, 1, effects(t, in, "dup"))
}

// waitGroup waits for wg, failing the test after inboxWait.
func waitGroup(t *testing.T, wg *sync.WaitGroup) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(inboxWait):
		t.Fatalf("concurrent transactions did not finish within %v: deadlock?", inboxWait)
	}
}
