package awstest

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

type receivedMessage struct {
	MessageId              string
	ReceiptHandle          string
	MD5OfBody              string
	Body                   string
	Attributes             map[string]string  `json:",omitempty"`
	MD5OfMessageAttributes string             `json:",omitempty"`
	MessageAttributes      map[string]msgAttr `json:",omitempty"`
}

// receiveMessage leases messages, waiting up to WaitTimeSeconds (or the
// queue's ReceiveMessageWaitTimeSeconds) for the first one. It returns as
// soon as at least one message is available, as SQS long polling does.
func (s *Server) receiveMessage(r *http.Request, in *sqsInput) (any, *apiError) {
	max := 1
	if in.MaxNumberOfMessages != nil {
		max = *in.MaxNumberOfMessages
		if max < 1 || max > sqsMaxBatch {
			return nil, invalidParam("Value %d for parameter MaxNumberOfMessages is invalid. Reason: Must be between 1 and 10, if provided.", max)
		}
	}
	s.mu.Lock()
	q, aerr := s.queueByURL(in.QueueUrl)
	if aerr != nil {
		s.mu.Unlock()
		return nil, aerr
	}
	wait := q.intAttr("ReceiveMessageWaitTimeSeconds")
	vis := q.intAttr("VisibilityTimeout")
	s.mu.Unlock()
	if in.WaitTimeSeconds != nil {
		wait = *in.WaitTimeSeconds
		if wait < 0 || wait > sqsMaxWait {
			return nil, invalidParam("Value %d for parameter WaitTimeSeconds is invalid. Reason: Must be >= 0 and <= 20, if provided.", wait)
		}
	}
	if in.VisibilityTimeout != nil {
		vis = *in.VisibilityTimeout
		if vis < 0 || time.Duration(vis)*time.Second > sqsMaxVisibility {
			return nil, invalidParam("Value %d for parameter VisibilityTimeout is invalid. Reason: Must be between 0 and 43200, if provided.", vis)
		}
	}
	deadline := time.Now().Add(time.Duration(wait) * time.Second)
	for {
		s.mu.Lock()
		q, aerr = s.queueByURL(in.QueueUrl)
		if aerr != nil {
			s.mu.Unlock()
			return nil, aerr
		}
		if r.Context().Err() != nil {
			s.mu.Unlock()
			return nil, &apiError{Status: 499, Type: "RequestCanceled", Message: "client went away"}
		}
		msgs := s.take(q, max, time.Duration(vis)*time.Second)
		if len(msgs) > 0 {
			out := s.render(msgs, in)
			s.mu.Unlock()
			return map[string][]receivedMessage{"Messages": out}, nil
		}
		changed := q.changed
		next := s.nextVisible(q)
		s.mu.Unlock()

		left := time.Until(deadline)
		if left <= 0 {
			return struct{}{}, nil
		}
		if !next.IsZero() {
			if d := next.Sub(s.now()) + time.Millisecond; d < left {
				left = d
			}
		}
		t := time.NewTimer(left)
		select {
		case <-changed:
		case <-t.C:
		case <-r.Context().Done():
		case <-s.closed:
			t.Stop()
			return struct{}{}, nil
		}
		t.Stop()
	}
}

// render builds the response entries with the requested system and message
// attributes.
func (s *Server) render(msgs []*message, in *sqsInput) []receivedMessage {
	sysNames := append(append([]string(nil), in.AttributeNames...), in.MessageSystemAttributeNames...)
	out := make([]receivedMessage, len(msgs))
	for i, m := range msgs {
		rm := receivedMessage{MessageId: m.id, ReceiptHandle: m.receipt, MD5OfBody: m.md5Body, Body: m.body}
		if len(sysNames) > 0 {
			rm.Attributes = map[string]string{}
			all := contains(sysNames, "All")
			want := func(n string) bool { return all || contains(sysNames, n) }
			set := func(n, v string) {
				if v != "" && want(n) {
					rm.Attributes[n] = v
				}
			}
			set("SenderId", m.senderID)
			set("SentTimestamp", millis(m.sent))
			set("ApproximateReceiveCount", strconv.Itoa(m.receives))
			set("ApproximateFirstReceiveTimestamp", millis(m.firstRecv))
			set("MessageGroupId", m.groupID)
			set("MessageDeduplicationId", m.dedupID)
			set("SequenceNumber", m.seq)
			set("DeadLetterQueueSourceArn", m.sourceARN)
			if th, ok := m.sysAttrs["AWSTraceHeader"]; ok && th.StringValue != nil {
				set("AWSTraceHeader", *th.StringValue)
			}
		}
		if sel := selectAttrs(m.attrs, in.MessageAttributeNames); len(sel) > 0 {
			rm.MessageAttributes = sel
			rm.MD5OfMessageAttributes = md5OfAttrs(sel)
		}
		out[i] = rm
	}
	return out
}

func millis(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return strconv.FormatInt(t.UnixMilli(), 10)
}

// selectAttrs applies MessageAttributeNames: "All" or ".*" for every
// attribute, "prefix.*" for a prefix, or exact names.
func selectAttrs(attrs map[string]msgAttr, names []string) map[string]msgAttr {
	if len(attrs) == 0 || len(names) == 0 {
		return nil
	}
	out := map[string]msgAttr{}
	for n, a := range attrs {
		for _, w := range names {
			if w == "All" || w == ".*" || w == n || strings.HasSuffix(w, ".*") && strings.HasPrefix(n, strings.TrimSuffix(w, "*")) {
				out[n] = a
				break
			}
		}
	}
	return out
}
