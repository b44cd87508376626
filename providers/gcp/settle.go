package gcp

import (
	"context"
	"log/slog"
	"sync"
	"time"

	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	pb "cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
)

// Limits on one Acknowledge or ModifyAckDeadline request.
const (
	maxAckIDsPerRequest   = 1000
	maxAckBytesPerRequest = 480 * 1024 // the service accepts 512 KiB; keep room for framing
)

// ackLinger is how long a settlement may wait in the queue for others to
// share its request, when no Receive call sends the queue first.
const ackLinger = 5 * time.Millisecond

// settler sends a receiver's acknowledgements and ack-deadline changes in
// batches. Settling a delivery only queues its ack id. The queue is sent by
// the next Receive call before it pulls (in the caller's goroutine, so
// consumers send concurrently; the call also waits for sends already under
// way), or by the settler's goroutine ackLinger after the queue stopped
// being empty, whichever comes first. Like the
// Pub/Sub client's own acknowledgements, they are sent after Ack returns: a
// failed request is logged, and the service redelivers the message
// (at-least-once).
type settler struct {
	client *vkit.SubscriptionAdminClient
	sub    string
	log    *slog.Logger

	mu   sync.Mutex
	acks []string
	// modacks is the deadline (seconds; 0 is a nack) queued for each ack
	// id: the last one asked for, so that a lease extension and the Nack
	// right after it, sent together, never arrive the wrong way round.
	modacks  map[string]int32
	stopped  bool
	started  uint64              // sends started so far
	inflight map[uint64]struct{} // sends not finished, by start number
	finished chan struct{}       // closed when a send finishes, if someone waits

	kick chan struct{} // the queue stopped being empty
	stop chan struct{}
	done chan struct{}
}

func newSettler(client *vkit.SubscriptionAdminClient, sub string, log *slog.Logger) *settler {
	s := &settler{client: client, sub: sub, log: log, modacks: map[string]int32{}, inflight: map[uint64]struct{}{},
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

// ack queues an acknowledgement. It reports false once the settler stopped.
func (s *settler) ack(id string) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	wasEmpty := len(s.acks) == 0 && len(s.modacks) == 0
	s.acks = append(s.acks, id)
	s.mu.Unlock()
	if wasEmpty {
		s.wake()
	}
	return true
}

// modack queues an ack-deadline change of secs seconds (0 = redeliver now).
func (s *settler) modack(secs int32, ids ...string) bool {
	s.mu.Lock()
	if s.stopped {
		s.mu.Unlock()
		return false
	}
	wasEmpty := len(s.acks) == 0 && len(s.modacks) == 0
	for _, id := range ids {
		s.modacks[id] = secs
	}
	s.mu.Unlock()
	if wasEmpty {
		s.wake()
	}
	return true
}

// wake tells the settler's goroutine that the queue stopped being empty.
func (s *settler) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// flush sends what is queued now, in the caller's goroutine, and waits for
// the sends already under way: when it returns, everything settled before
// the call has reached the service (or failed).
func (s *settler) flush(ctx context.Context) {
	s.send(context.WithoutCancel(ctx))
	s.mu.Lock()
	target := s.started
	for {
		pending := false
		for n := range s.inflight {
			if n <= target {
				pending = true
				break
			}
		}
		if !pending {
			s.mu.Unlock()
			return
		}
		if s.finished == nil {
			s.finished = make(chan struct{})
		}
		ch := s.finished
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return
		}
		s.mu.Lock()
	}
}

// close stops the settler once it has sent what is queued, within ctx.
func (s *settler) close(ctx context.Context) error {
	s.mu.Lock()
	already := s.stopped
	s.stopped = true
	s.mu.Unlock()
	if !already {
		close(s.stop)
	}
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *settler) loop() {
	defer close(s.done)
	for {
		select {
		case <-s.kick:
			t := time.NewTimer(ackLinger)
			select {
			case <-t.C:
			case <-s.stop:
				t.Stop()
				s.send(context.Background())
				return
			}
			s.send(context.Background())
		case <-s.stop:
			s.send(context.Background()) // the last queued settlements
			return
		}
	}
}

// send takes everything queued and sends it.
func (s *settler) send(ctx context.Context) {
	s.mu.Lock()
	acks := s.acks
	var modacks map[int32][]string // by deadline
	if len(s.modacks) > 0 {
		modacks = map[int32][]string{}
		for id, secs := range s.modacks {
			modacks[secs] = append(modacks[secs], id)
		}
		clear(s.modacks)
	}
	s.acks = nil
	if len(acks) == 0 && len(modacks) == 0 {
		s.mu.Unlock()
		return
	}
	s.started++
	seq := s.started
	s.inflight[seq] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.inflight, seq)
		if s.finished != nil {
			close(s.finished)
			s.finished = nil
		}
		s.mu.Unlock()
	}()
	ctx, cancel := context.WithTimeout(ctx, callTimeout)
	defer cancel()
	// Deadline changes first, so that a receipt extension queued with an
	// acknowledgement of the same message never arrives after it.
	for secs, ids := range modacks {
		for _, batch := range ackBatches(ids) {
			err := s.client.ModifyAckDeadline(ctx, &pb.ModifyAckDeadlineRequest{Subscription: s.sub, AckIds: batch, AckDeadlineSeconds: secs})
			if err != nil {
				s.log.Warn("gcp: modify ack deadline failed; Pub/Sub redelivers when the current deadline passes",
					"subscription", s.sub, "messages", len(batch), "deadlineSeconds", secs, "error", err)
			}
		}
	}
	for _, batch := range ackBatches(acks) {
		if err := s.client.Acknowledge(ctx, &pb.AcknowledgeRequest{Subscription: s.sub, AckIds: batch}); err != nil {
			s.log.Warn("gcp: acknowledge failed; Pub/Sub will redeliver", "subscription", s.sub, "messages", len(batch), "error", err)
		}
	}
}

// ackBatches splits ids into requests within the service's limits.
func ackBatches(ids []string) [][]string {
	var out [][]string
	for len(ids) > 0 {
		n, size := 0, 0
		for n < len(ids) && n < maxAckIDsPerRequest && size+len(ids[n])+4 <= maxAckBytesPerRequest {
			size += len(ids[n]) + 4
			n++
		}
		if n == 0 {
			n = 1
		}
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	return out
}

// leaseSeconds converts a lease or redelivery delay to whole seconds within
// what ModifyAckDeadline accepts, rounding up so that a redelivery never
// comes earlier than asked.
func leaseSeconds(d time.Duration) int32 {
	if d <= 0 {
		return 0
	}
	if d >= maxLease {
		return int32(maxLease / time.Second)
	}
	return int32((d + time.Second - 1) / time.Second)
}
