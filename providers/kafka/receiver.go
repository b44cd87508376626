package kafka

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/crossbus/crossbus/driver"
)

// commitTimeout bounds one offset commit.
const commitTimeout = 10 * time.Second

// Subscribe joins the subscription's consumer group (GroupID) on topic (creating the
// group at the end of the topic when AutoCreate is on) and returns a
// receiver. The group is joined in the background; events published after
// the group was created are delivered once it has partitions.
func (p *Provider) Subscribe(ctx context.Context, spec driver.SubscriptionSpec) (driver.Receiver, error) {
	if spec.Topic == "" || spec.Name == "" {
		return nil, fmt.Errorf("%w: kafka: subscribe needs a topic and a subscription name", driver.ErrInvalidOption)
	}
	if p.isClosed() {
		return nil, fmt.Errorf("kafka: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	if err := p.ensureTopic(ctx, spec.Topic, false); err != nil {
		return nil, err
	}
	group := p.GroupID(spec.Topic, spec.Name)
	if err := p.ensureGroup(ctx, spec.Topic, group, false); err != nil {
		return nil, err
	}
	return p.openReceiver(ctx, spec, group, false)
}

// SubscribeDeadLetters opens a receiver over a subscription's dead-letter
// topic in a consumer group of its own (named like the topic) that starts at
// its oldest record. Acking a dead letter commits past it.
func (p *Provider) SubscribeDeadLetters(ctx context.Context, topic, subscription string) (driver.Receiver, error) {
	if p.isClosed() {
		return nil, fmt.Errorf("kafka: subscribe to dead letters of %q: %w", subscription, driver.ErrClosed)
	}
	dlTopic := DeadLetterTopic(topic, subscription)
	if err := p.ensureTopic(ctx, dlTopic, true); err != nil {
		return nil, err
	}
	return p.openReceiver(ctx, driver.SubscriptionSpec{Topic: dlTopic, Name: dlTopic}, dlTopic, true)
}

var _ driver.DeadLetterReader = (*Provider)(nil)

func (p *Provider) openReceiver(ctx context.Context, spec driver.SubscriptionSpec, group string, dlq bool) (*receiver, error) {
	r := &receiver{
		p:       p,
		spec:    spec,
		dlq:     dlq,
		parts:   map[int32]*partition{},
		q:       newQueue(),
		errs:    make(chan error, 1),
		failed:  make(chan struct{}),
		closing: make(chan struct{}),
	}
	// The topic's ID tells a deleted and re-created topic from the one
	// this consumer follows (zero when unknown: only existence is checked).
	if id, ok, err := p.lookupTopic(ctx, spec.Topic); err == nil && ok {
		r.topicID = id
	}
	r.caps = p.Capabilities()
	if dlq {
		r.caps.NativeDeadLetter = false // no queue for the queue's readers
	}
	opts := []kgo.Opt{
		kgo.SeedBrokers(p.opts.Brokers...),
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(spec.Topic),
		kgo.DisableAutoCommit(),
		// Partitions without a committed offset (added after the group
		// was created) are read from their start: nothing is skipped.
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Unknown-topic errors are retriable, but they are how a deleted
		// topic shows (see fetchFailed).
		kgo.KeepRetryableFetchErrors(),
		kgo.OnPartitionsAssigned(r.onAssigned),
		kgo.OnPartitionsRevoked(r.onRevoked),
		kgo.OnPartitionsLost(r.onLost),
	}
	cl, err := kgo.NewClient(append(opts, p.opts.ClientOpts...)...)
	if err != nil {
		return nil, fmt.Errorf("kafka: consumer for subscription %q: %w", spec.Name, err)
	}
	r.cl = cl
	r.ctx, r.cancel = context.WithCancel(context.Background())
	if !p.receivers.Add(r) {
		cl.Close()
		r.cancel()
		return nil, fmt.Errorf("kafka: subscribe %q: %w", spec.Name, driver.ErrClosed)
	}
	r.wg.Add(2)
	go r.poll()
	go r.commitLoop()
	return r, nil
}

// receiver is one member of a consumer group. A poll goroutine fetches
// records into a bounded queue that Receive empties; a commit goroutine
// commits each partition's settled prefix.
type receiver struct {
	p    *Provider
	spec driver.SubscriptionSpec
	dlq  bool
	caps driver.Capabilities
	cl   *kgo.Client

	ctx    context.Context // cancelled by Close: stops polling
	cancel context.CancelFunc

	partsMu sync.RWMutex
	parts   map[int32]*partition

	// commitMu orders commits against revocation: a partition's offsets
	// are never committed after its final commit in onRevoked.
	commitMu sync.Mutex

	q         *queue
	errs      chan error
	closing   chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	noCommit  bool // set before a simulated crash (tests), or when the topic is gone

	topicID kadm.TopicID // of the topic when the receiver opened
	probed  time.Time    // last topic lookup (poll goroutine only)

	failOnce sync.Once
	failed   chan struct{} // closed when err is set
	err      error         // why the receiver stopped for good
}

// Capabilities reports the provider's capabilities (a dead-letter reader
// has no dead-letter queue of its own).
func (r *receiver) Capabilities() driver.Capabilities { return r.caps }

func (r *receiver) partition(id int32) *partition {
	r.partsMu.RLock()
	defer r.partsMu.RUnlock()
	return r.parts[id]
}

func (r *receiver) isClosing() bool {
	select {
	case <-r.closing:
		return true
	default:
		return false
	}
}

// poll fetches records while there is room in the queue. It stops when an
// error retrying cannot fix comes (see fetchFailed).
func (r *receiver) poll() {
	defer r.wg.Done()
	limit := r.p.opts.Prefetch
	for {
		room := r.q.waitRoom(r.ctx, limit)
		if room == 0 {
			return
		}
		fetches := r.cl.PollRecords(r.ctx, room)
		if fetches.IsClientClosed() || r.ctx.Err() != nil {
			return
		}
		var fatal error
		failed := false
		fetches.EachError(func(topic string, part int32, err error) {
			if fatal != nil || errors.Is(err, context.Canceled) {
				return
			}
			failed = true
			fatal = r.fetchFailed(topic, part, err)
		})
		fetches.EachRecord(r.accept)
		if fatal != nil {
			r.fail(fatal)
			return
		}
		if failed && fetches.NumRecords() == 0 && !r.pause(errorPause) {
			return
		}
	}
}

// errorPause spaces polls that bring only errors: the client hands
// retriable errors back at once, and they can last until its next metadata
// refresh.
const errorPause = 100 * time.Millisecond

// pause waits d, or until the receiver closes (false).
func (r *receiver) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.ctx.Done():
		return false
	}
}

// fail stops the receiver for good: Receive returns err from now on.
func (r *receiver) fail(err error) {
	r.failOnce.Do(func() {
		r.p.opts.Logger.Error("kafka: subscription cannot receive any more", "subscription", r.spec.Name, "topic", r.spec.Topic, "error", err)
		if errors.Is(err, driver.ErrTopicNotFound) {
			// Nothing left to commit to.
			r.commitMu.Lock()
			r.noCommit = true
			r.commitMu.Unlock()
		}
		r.err = err
		close(r.failed)
	})
}

// accept turns a fetched record into a queued delivery.
func (r *receiver) accept(rec *kgo.Record) {
	part := r.partition(rec.Partition)
	if part == nil {
		return // not (or no longer) assigned
	}
	ent, ok := part.add(rec.Offset, rec.LeaderEpoch)
	if !ok {
		return
	}
	r.q.push(r.newDelivery(part, ent, rec, 1), false)
}

func (r *receiver) report(err error) {
	select {
	case r.errs <- err:
	default:
	}
}

// Receive waits for at least one delivery and returns up to len(buf).
// Records of partitions being revoked are skipped: their next owner reads
// them again from the committed offset.
func (r *receiver) Receive(ctx context.Context, buf []driver.Delivery) (int, error) {
	if len(buf) == 0 {
		return 0, nil
	}
	for {
		if r.isClosing() {
			return 0, fmt.Errorf("kafka: receive from %q: %w", r.spec.Name, driver.ErrClosed)
		}
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if n := r.q.take(buf); n > 0 {
			return n, nil
		}
		select {
		case <-r.q.ready:
		case err := <-r.errs:
			return 0, err
		case <-r.failed:
			if !r.isClosing() {
				return 0, r.err
			}
		case <-r.closing:
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Close stops fetching, commits every partition's settled prefix and leaves
// the group. Records not settled stay uncommitted: the partition's next
// owner receives them.
func (r *receiver) Close(ctx context.Context) error { return r.stop(ctx, true) }

// crash stops the receiver the way a killed process would: no final commit
// (what the commit loop already committed stays). Tests use it.
func (r *receiver) crash() { _ = r.stop(context.Background(), false) }

func (r *receiver) stop(ctx context.Context, commit bool) error {
	var err error
	r.closeOnce.Do(func() {
		if !commit {
			r.commitMu.Lock()
			r.noCommit = true
			r.commitMu.Unlock()
		}
		close(r.closing)
		r.cancel()
		r.wg.Wait()
		if commit {
			err = r.commitAll(ctx)
		}
		r.q.close()
		r.cl.Close() // leaves the group; onRevoked finds nothing left to do
		r.p.receivers.Remove(r)
	})
	return err
}

// commitLoop commits settled offsets every CommitInterval.
func (r *receiver) commitLoop() {
	defer r.wg.Done()
	t := time.NewTicker(r.p.opts.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-t.C:
		}
		if err := r.commit(r.ctx, r.snapshot(), false); err != nil && r.ctx.Err() == nil {
			r.p.opts.Logger.Warn("kafka: commit failed; will retry", "subscription", r.spec.Name, "error", err)
		}
	}
}

func (r *receiver) snapshot() []*partition {
	r.partsMu.RLock()
	defer r.partsMu.RUnlock()
	ps := make([]*partition, 0, len(r.parts))
	for _, p := range r.parts {
		ps = append(ps, p)
	}
	return ps
}

// commit commits the committable offsets of parts (final: partitions being
// revoked or closed, for their last commit).
func (r *receiver) commit(ctx context.Context, parts []*partition, final bool) error {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	if r.noCommit {
		return nil
	}
	offsets := map[int32]kgo.EpochOffset{}
	for _, p := range parts {
		if off, epoch, ok := p.committable(final); ok {
			offsets[p.id] = kgo.EpochOffset{Epoch: epoch, Offset: off}
		}
	}
	if len(offsets) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, commitTimeout)
	defer cancel()
	var cerr error
	r.cl.CommitOffsetsSync(ctx, map[string]map[int32]kgo.EpochOffset{r.spec.Topic: offsets},
		func(_ *kgo.Client, _ *kmsg.OffsetCommitRequest, resp *kmsg.OffsetCommitResponse, err error) {
			if err != nil {
				cerr = err
				return
			}
			for _, t := range resp.Topics {
				for _, rp := range t.Partitions {
					if e := kerr.ErrorForCode(rp.ErrorCode); e != nil {
						cerr = fmt.Errorf("partition %d: %w", rp.Partition, e)
						continue
					}
					if o, ok := offsets[rp.Partition]; ok {
						for _, p := range parts {
							if p.id == rp.Partition {
								p.committed(o.Offset)
							}
						}
					}
				}
			}
		})
	return cerr
}

// commitAll is the final commit of every partition (Close).
func (r *receiver) commitAll(ctx context.Context) error {
	parts := r.snapshot()
	for _, p := range parts {
		p.startRevoke()
	}
	if err := r.commit(context.WithoutCancel(ctx), parts, true); err != nil {
		return fmt.Errorf("kafka: subscription %q: final commit: %w", r.spec.Name, err)
	}
	return nil
}

// onAssigned starts tracking newly assigned partitions.
func (r *receiver) onAssigned(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
	r.partsMu.Lock()
	defer r.partsMu.Unlock()
	for _, id := range assigned[r.spec.Topic] {
		r.parts[id] = newPartition(id)
	}
}

// onRevoked lets revoked partitions go: hand out nothing more of them, wait
// (up to RevokeTimeout) for their records in handlers, commit, forget them.
func (r *receiver) onRevoked(ctx context.Context, _ *kgo.Client, revoked map[string][]int32) {
	parts := r.owned(revoked[r.spec.Topic])
	if len(parts) == 0 {
		return
	}
	idle := make([]<-chan struct{}, len(parts))
	for i, p := range parts {
		idle[i] = p.startRevoke()
	}
	if r.isClosing() {
		// Close made the final commit (or, in a crash, none is wanted).
		r.forget(parts)
		return
	}
	deadline := time.NewTimer(r.p.opts.RevokeTimeout)
	defer deadline.Stop()
wait:
	for i, ch := range idle {
		select {
		case <-ch:
		case <-deadline.C:
			r.p.opts.Logger.Warn("kafka: partitions revoked while handlers still run; they may overlap with the next owner",
				"subscription", r.spec.Name, "partition", parts[i].id, "waited", r.p.opts.RevokeTimeout)
			break wait
		case <-r.closing:
			break wait // Close commits what is settled
		}
	}
	if err := r.commit(context.WithoutCancel(ctx), parts, true); err != nil {
		r.p.opts.Logger.Warn("kafka: commit of revoked partitions failed; their next owner may handle some events again",
			"subscription", r.spec.Name, "error", err)
	}
	r.forget(parts)
}

// onLost drops partitions the group took away without a revoke (the member
// was fenced): committing would fail, so nothing is committed.
func (r *receiver) onLost(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
	parts := r.owned(lost[r.spec.Topic])
	for _, p := range parts {
		p.startRevoke()
	}
	r.forget(parts)
}

func (r *receiver) owned(ids []int32) []*partition {
	r.partsMu.RLock()
	defer r.partsMu.RUnlock()
	var parts []*partition
	for _, id := range ids {
		if p := r.parts[id]; p != nil {
			parts = append(parts, p)
		}
	}
	return parts
}

func (r *receiver) forget(parts []*partition) {
	r.partsMu.Lock()
	defer r.partsMu.Unlock()
	for _, p := range parts {
		if r.parts[p.id] == p {
			delete(r.parts, p.id)
		}
	}
}
