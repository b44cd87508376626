package awstest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// SQS limits, from the SQS Developer Guide's quotas.
const (
	sqsMaxBatch        = 10
	sqsMaxAttributes   = 10
	sqsMaxMessageBytes = 1 << 20
	sqsMaxVisibility   = 12 * time.Hour
	sqsMaxDelay        = 15 * time.Minute
	sqsDedupWindow     = 5 * time.Minute
	sqsPurgeInterval   = 60 * time.Second
	sqsMaxWait         = 20
)

// queue is one SQS queue. Every field is guarded by Server.mu.
type queue struct {
	name, url, arn string
	fifo           bool
	attrs          map[string]string // settable attributes, with defaults
	created        time.Time
	modified       time.Time
	lastPurge      time.Time

	msgs    []*message          // arrival order; deleted ones removed lazily
	byID    map[string]*message // live messages
	dedup   map[string]dedupRecord
	changed chan struct{} // closed when messages may have become receivable
	nonce   uint64
}

type dedupRecord struct {
	at        time.Time
	messageID string
	seq       string
}

// message is one message of a queue.
type message struct {
	id         string
	body       string
	attrs      map[string]msgAttr
	sysAttrs   map[string]msgAttr // AWSTraceHeader
	md5Body    string
	md5Attrs   string
	md5Sys     string
	sent       time.Time
	senderID   string
	groupID    string
	dedupID    string
	seq        string
	visibleAt  time.Time // receivable from then
	receipt    string    // current receipt handle ("" before the first receive)
	leasedAt   time.Time // when the current receipt was issued
	receives   int
	firstRecv  time.Time
	deleted    bool
	sourceARN  string // DeadLetterQueueSourceArn after a redrive
	retainFrom time.Time
}

// msgAttr is a message attribute value as the JSON protocol carries it.
type msgAttr struct {
	DataType         string   `json:"DataType"`
	StringValue      *string  `json:"StringValue,omitempty"`
	BinaryValue      []byte   `json:"BinaryValue,omitempty"`
	StringListValues []string `json:"StringListValues,omitempty"`
	BinaryListValues [][]byte `json:"BinaryListValues,omitempty"`
}

func (a msgAttr) size(name string) int {
	n := len(name) + len(a.DataType)
	if a.StringValue != nil {
		n += len(*a.StringValue)
	}
	return n + len(a.BinaryValue)
}

func (s *Server) queueURL(name string) string {
	return s.URL + "/" + s.opts.AccountID + "/" + name
}

func (s *Server) queueARN(name string) string {
	return "arn:aws:sqs:" + s.opts.Region + ":" + s.opts.AccountID + ":" + name
}

// queueByURL resolves a queue URL (any host; the path is /<account>/<name>).
func (s *Server) queueByURL(u string) (*queue, *apiError) {
	if u == "" {
		return nil, missingParam("QueueUrl")
	}
	i := strings.Index(u, "://")
	path := u
	if i >= 0 {
		path = u[i+3:]
		if j := strings.IndexByte(path, '/'); j >= 0 {
			path = path[j:]
		} else {
			path = ""
		}
	}
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if len(parts) == 2 && parts[0] == s.opts.AccountID {
		if q := s.queues[parts[1]]; q != nil {
			return q, nil
		}
	}
	return nil, errNoQueue()
}

func (s *Server) queueByARN(arn string) *queue {
	p := strings.Split(arn, ":")
	if len(p) != 6 || p[2] != "sqs" || p[4] != s.opts.AccountID {
		return nil
	}
	return s.queues[p[5]]
}

func errNoQueue() *apiError {
	return clientErr("QueueDoesNotExist", "AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist.")
}

func (q *queue) signal() {
	close(q.changed)
	q.changed = make(chan struct{})
}

func (q *queue) intAttr(name string) int {
	n, _ := strconv.Atoi(q.attrs[name])
	return n
}

type redrivePolicy struct {
	DeadLetterTargetArn string `json:"deadLetterTargetArn"`
	MaxReceiveCount     any    `json:"maxReceiveCount"` // AWS accepts a number or a string
}

func (q *queue) redrive() (arn string, maxReceives int, ok bool) {
	raw := q.attrs["RedrivePolicy"]
	if raw == "" {
		return "", 0, false
	}
	var p redrivePolicy
	if json.Unmarshal([]byte(raw), &p) != nil {
		return "", 0, false
	}
	n, _ := strconv.Atoi(strings.TrimSpace(fmt.Sprint(p.MaxReceiveCount)))
	return p.DeadLetterTargetArn, n, n > 0 && p.DeadLetterTargetArn != ""
}

// enqueue adds a validated message. For FIFO queues it applies the
// deduplication window and reports whether the message was a duplicate.
func (s *Server) enqueue(q *queue, m *message, delay time.Duration) (dup *dedupRecord) {
	now := s.now()
	if q.fifo {
		for k, r := range q.dedup {
			if now.Sub(r.at) >= sqsDedupWindow {
				delete(q.dedup, k)
			}
		}
		key := m.dedupID
		if q.attrs["DeduplicationScope"] == "messageGroup" {
			key = m.groupID + "\x00" + key
		}
		if r, ok := q.dedup[key]; ok {
			return &r
		}
		m.seq = fmt.Sprintf("%020d", s.nextID()*1000)
		q.dedup[key] = dedupRecord{at: now, messageID: m.id, seq: m.seq}
	}
	m.sent, m.retainFrom = now, now
	m.visibleAt = now.Add(delay)
	q.msgs = append(q.msgs, m)
	q.byID[m.id] = m
	q.signal()
	return nil
}

func (s *Server) newMessageID() string {
	n := s.nextID()
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", n, n>>32&0xffff, n&0xfff, n>>12&0xfff, n)
}

// take leases up to max receivable messages for vis, moving those past the
// redrive policy's maxReceiveCount to the dead-letter queue first.
func (s *Server) take(q *queue, max int, vis time.Duration) []*message {
	now := s.now()
	retention := time.Duration(q.intAttr("MessageRetentionPeriod")) * time.Second
	dlqARN, maxReceives, hasRedrive := q.redrive()
	dlq := (*queue)(nil)
	if hasRedrive {
		dlq = s.queueByARN(dlqARN)
	}
	blocked := map[string]bool{} // FIFO groups with a message in flight
	if q.fifo {
		for _, m := range q.msgs {
			if !m.deleted && m.receipt != "" && now.Before(m.visibleAt) {
				blocked[m.groupID] = true
			}
		}
	}
	var out []*message
	for len(q.msgs) > 0 && q.msgs[0].deleted {
		q.msgs[0] = nil
		q.msgs = q.msgs[1:] // the slice's start moves; append reallocates in time
	}
	skipped := 0
	for _, m := range q.msgs {
		if len(out) == max {
			break
		}
		if m.deleted {
			skipped++
			continue
		}
		if now.Sub(m.retainFrom) >= retention {
			s.remove(q, m)
			continue
		}
		if now.Before(m.visibleAt) {
			if q.fifo {
				blocked[m.groupID] = true // delayed or in flight: later messages of its group wait
			}
			continue
		}
		if q.fifo && blocked[m.groupID] {
			continue
		}
		if dlq != nil && m.receives >= maxReceives {
			s.moveToDLQ(q, dlq, m)
			continue
		}
		m.receives++
		if m.receives == 1 {
			m.firstRecv = now
		}
		q.nonce++
		m.receipt = base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("%s\x00%s\x00%d\x00%d", q.name, m.id, m.receives, q.nonce)))
		m.leasedAt = now
		m.visibleAt = now.Add(vis)
		out = append(out, m)
	}
	if skipped > 128 {
		s.compactNow(q) // deleted messages behind one in flight: do not scan them again
	} else {
		s.compact(q)
	}
	return out
}

// moveToDLQ redrives m from q to dlq, as SQS does when a message's receive
// count exceeds maxReceiveCount. The message keeps its id, body, attributes
// and sent time, starts over with no receives, and gains
// DeadLetterQueueSourceArn.
func (s *Server) moveToDLQ(q, dlq *queue, m *message) {
	s.remove(q, m)
	c := *m
	c.deleted, c.receipt, c.receives, c.firstRecv = false, "", 0, time.Time{}
	c.sourceARN = q.arn
	now := s.now()
	c.visibleAt, c.retainFrom = now, m.sent // retention counts from the original enqueue
	if dlq.fifo {
		c.seq = fmt.Sprintf("%020d", s.nextID()*1000)
	}
	dlq.msgs = append(dlq.msgs, &c)
	dlq.byID[c.id] = &c
	dlq.signal()
}

func (s *Server) remove(q *queue, m *message) {
	m.deleted = true
	delete(q.byID, m.id)
}

// compact drops deleted messages once they are at least half the slice.
func (s *Server) compact(q *queue) {
	if len(q.msgs) < 64 || len(q.byID) > len(q.msgs)/2 {
		return
	}
	s.compactNow(q)
}

func (s *Server) compactNow(q *queue) {
	live := make([]*message, 0, len(q.byID)+16)
	for _, m := range q.msgs {
		if !m.deleted {
			live = append(live, m)
		}
	}
	q.msgs = live
}

// nextVisible is the earliest time a message that is not receivable now
// becomes receivable (zero when none waits).
func (s *Server) nextVisible(q *queue) time.Time {
	now := s.now()
	var next time.Time
	for _, m := range q.msgs {
		if !m.deleted && m.visibleAt.After(now) && (next.IsZero() || m.visibleAt.Before(next)) {
			next = m.visibleAt
		}
	}
	return next
}

// byReceipt finds the message a receipt handle was issued for. current is
// false when the handle is well formed but not the message's latest one (or
// the message is gone).
func (s *Server) byReceipt(q *queue, handle string) (m *message, current bool, aerr *apiError) {
	raw, err := base64.RawURLEncoding.DecodeString(handle)
	parts := strings.Split(string(raw), "\x00")
	if handle == "" || err != nil || len(parts) != 4 || parts[0] != q.name {
		return nil, false, clientErr("ReceiptHandleIsInvalid", "ReceiptHandleIsInvalid",
			"The input receipt handle \"%s\" is not a valid receipt handle.", handle)
	}
	m = q.byID[parts[1]]
	if m == nil || m.receipt != handle {
		return m, false, nil
	}
	return m, true, nil
}

func (s *Server) deleteMessage(q *queue, handle string) *apiError {
	m, current, aerr := s.byReceipt(q, handle)
	if aerr != nil {
		return aerr
	}
	if !current {
		if q.fifo {
			return invalidParam("Value %s for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired.", handle)
		}
		return nil // SQS accepts a stale handle of a standard queue and keeps the message
	}
	if q.fifo && !s.now().Before(m.visibleAt) {
		return invalidParam("Value %s for parameter ReceiptHandle is invalid. Reason: The receipt handle has expired.", handle)
	}
	s.remove(q, m)
	s.compact(q)
	if q.fifo {
		q.signal() // the next message of the group may go now
	}
	return nil
}

func (s *Server) changeVisibility(q *queue, handle string, secs int) *apiError {
	if secs < 0 || time.Duration(secs)*time.Second > sqsMaxVisibility {
		return invalidParam("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", secs)
	}
	m, current, aerr := s.byReceipt(q, handle)
	if aerr != nil {
		return aerr
	}
	now := s.now()
	if !current || !now.Before(m.visibleAt) {
		return clientErr("MessageNotInflight", "AWS.SimpleQueueService.MessageNotInflight", "Message does not exist or is not available for visibility timeout change.")
	}
	until := now.Add(time.Duration(secs) * time.Second)
	if until.Sub(m.leasedAt) > sqsMaxVisibility {
		return invalidParam("Value %d for parameter VisibilityTimeout is invalid. Reason: Total VisibilityTimeout for the message is beyond the limit [43200 seconds]", secs)
	}
	m.visibleAt = until
	q.signal()
	return nil
}

// contentDedupID is the deduplication id SQS derives from the body when
// ContentBasedDeduplication is on.
func contentDedupID(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}

// counts returns ApproximateNumberOfMessages, ...NotVisible and ...Delayed.
func (s *Server) counts(q *queue) (visible, inflight, delayed int) {
	now := s.now()
	for _, m := range q.msgs {
		switch {
		case m.deleted:
		case !now.Before(m.visibleAt):
			visible++
		case m.receipt != "":
			inflight++
		default:
			delayed++
		}
	}
	return
}
