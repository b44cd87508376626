package eventgrid

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/messaging/eventgrid/aznamespaces"

	"github.com/crossbus/crossbus/driver"
)

type opKind int

const (
	opAck opKind = iota
	opRelease
	opReject
	opRenew
)

func (k opKind) String() string {
	return [...]string{"acknowledge", "release", "reject", "renew lock of"}[k]
}

func (k opKind) past() string {
	return [...]string{"acknowledged", "released", "rejected", "renewed"}[k]
}

// settleOp is one kind of lock-token request; releases with different delays
// are different requests.
type settleOp struct {
	kind  opKind
	delay aznamespaces.ReleaseDelay
}

// maxSettleTokens bounds the lock tokens of one request.
const maxSettleTokens = 100

// settleTimeout bounds one settle request (the SDK retries inside it).
const settleTimeout = time.Minute

// settler batches lock-token requests by group commit: the first caller of an
// operation sends it at once; callers that arrive while that request is in
// flight queue up and go together in the next request. An idle consumer pays
// no delay; a busy one sends one request per batch instead of one per event.
type settler struct {
	r *receiver

	mu    sync.Mutex
	lanes map[settleOp]*lane
}

type lane struct {
	pending []*settleReq
	busy    bool
}

type settleReq struct {
	token string
	done  chan error
}

// do runs op for the tokens and returns the first failure.
func (s *settler) do(ctx context.Context, op settleOp, tokens ...string) error {
	for _, err := range s.each(ctx, op, tokens...) {
		if err != nil {
			return err
		}
	}
	return nil
}

// each runs op for the tokens and returns each token's result.
func (s *settler) each(ctx context.Context, op settleOp, tokens ...string) []error {
	reqs := make([]*settleReq, len(tokens))
	s.mu.Lock()
	l := s.lanes[op]
	if l == nil {
		l = &lane{}
		s.lanes[op] = l
	}
	for i, t := range tokens {
		reqs[i] = &settleReq{token: t, done: make(chan error, 1)}
	}
	l.pending = append(l.pending, reqs...)
	if !l.busy {
		l.busy = true
		for len(l.pending) > 0 {
			n := min(len(l.pending), maxSettleTokens)
			batch := append([]*settleReq(nil), l.pending[:n]...)
			l.pending = append(l.pending[:0], l.pending[n:]...)
			s.mu.Unlock()
			s.send(ctx, op, batch)
			s.mu.Lock()
		}
		l.busy = false
	}
	s.mu.Unlock()
	errs := make([]error, len(reqs))
	for i, r := range reqs {
		select {
		case errs[i] = <-r.done:
		case <-ctx.Done():
			for j := i; j < len(reqs); j++ {
				errs[j] = ctx.Err()
			}
			return errs
		}
	}
	return errs
}

// send makes one request and answers every waiter in batch.
func (s *settler) send(ctx context.Context, op settleOp, batch []*settleReq) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	tokens := make([]string, len(batch))
	for i, r := range batch {
		tokens[i] = r.token
	}
	c := s.r.c
	var failed []aznamespaces.FailedLockToken
	var err error
	switch op.kind {
	case opAck:
		var resp aznamespaces.AcknowledgeEventsResponse
		resp, err = c.AcknowledgeEvents(ctx, tokens, nil)
		failed = resp.FailedLockTokens
	case opRelease:
		var resp aznamespaces.ReleaseEventsResponse
		d := op.delay
		resp, err = c.ReleaseEvents(ctx, tokens, &aznamespaces.ReleaseEventsOptions{ReleaseDelayInSeconds: &d})
		failed = resp.FailedLockTokens
	case opReject:
		var resp aznamespaces.RejectEventsResponse
		resp, err = c.RejectEvents(ctx, tokens, nil)
		failed = resp.FailedLockTokens
	case opRenew:
		var resp aznamespaces.RenewEventLocksResponse
		resp, err = c.RenewEventLocks(ctx, tokens, nil)
		failed = resp.FailedLockTokens
	}
	if err != nil {
		err = mapError(fmt.Sprintf("%s %d event(s) of %s/%s", op.kind, len(tokens), s.r.topic, s.r.sub), err, driver.ErrSubscriptionNotFound)
		for _, r := range batch {
			r.done <- err
		}
		return
	}
	lost := make(map[string]error, len(failed))
	for _, f := range failed {
		if f.LockToken == nil {
			continue
		}
		code, msg := "", ""
		if f.Error != nil {
			if f.Error.Code != nil {
				code = *f.Error.Code
			}
			if f.Error.Message != nil {
				msg = *f.Error.Message
			}
		}
		lost[*f.LockToken] = fmt.Errorf("%w: Event Grid refused the lock token (%s: %s)", ErrLockLost, code, msg)
	}
	for _, r := range batch {
		r.done <- lost[r.token]
	}
}
