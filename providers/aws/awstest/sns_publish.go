package awstest

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/url"
	"time"
)

func (s *Server) checkPublish(t *topic, p *snsPublish) *apiError {
	if p.message == "" {
		return snsParam("Empty message")
	}
	if !utf8Valid(p.message) {
		return snsParam("Message Reason: Message must be UTF-8 encoded")
	}
	if len(p.subject) > 100 {
		return snsParam("Subject Reason: Subject must be less than 100 characters")
	}
	if p.structure != "" && p.structure != "json" {
		return snsParam("MessageStructure Reason: must be json")
	}
	if _, aerr := checkAttrs(p.attrs, 1<<30); aerr != nil {
		return snsInvalid("InvalidParameterValue", "ParameterValueInvalid", "%s", aerr.Message)
	}
	if t.fifo {
		if p.groupID == "" {
			return snsParam("The MessageGroupId parameter is required for FIFO topics")
		}
		if p.dedupID == "" {
			if t.attrs["ContentBasedDeduplication"] != "true" {
				return snsParam("The topic should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
			}
			p.dedupID = contentDedupID(p.message)
		}
		if !validFIFOToken(p.groupID) || !validFIFOToken(p.dedupID) {
			return snsParam("MessageGroupId or MessageDeduplicationId Reason: 1 to 128 alphanumeric and punctuation characters")
		}
	} else if p.dedupID != "" {
		return snsParam("MessageDeduplicationId Reason: The request includes MessageDeduplicationId parameter that is not valid for this topic type")
	}
	return nil
}

// publish fans a checked message out to the topic's subscriptions and
// returns its message id and (FIFO) sequence number.
func (s *Server) publish(t *topic, p *snsPublish) (id, seq string) {
	now := s.now()
	if t.fifo {
		for k, r := range t.dedup {
			if now.Sub(r.at) >= sqsDedupWindow {
				delete(t.dedup, k)
			}
		}
		if r, ok := t.dedup[p.dedupID]; ok {
			return r.messageID, r.seq
		}
		seq = fmt.Sprintf("%020d", s.nextID()*1000)
	}
	id = s.newMessageID()
	if t.fifo {
		t.dedup[p.dedupID] = dedupRecord{at: now, messageID: id, seq: seq}
	}
	for _, sub := range t.subs {
		if sub.filterAccepts(p) {
			s.deliverSNS(t, sub, p, id, seq, now)
		}
	}
	return id, seq
}

func (s *Server) deliverSNS(t *topic, sub *subscription, p *snsPublish, id, seq string, now time.Time) {
	q := s.queueByARN(sub.endpoint)
	if q == nil {
		s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("sns %s -> %s: queue does not exist", t.arn, sub.endpoint))
		return
	}
	if !policyAllows(q.attrs["Policy"], "sns.amazonaws.com", t.arn, q.arn) {
		s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("sns %s -> %s: the queue policy does not allow sns.amazonaws.com to send from this topic", t.arn, q.arn))
		return
	}
	e := sendEntry{}
	if sub.raw() {
		if len(p.attrs) > sqsMaxAttributes {
			s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("sns %s -> %s: %d message attributes, over the 10 raw delivery allows: message discarded", t.arn, q.arn, len(p.attrs)))
			return
		}
		body := p.message
		e.MessageBody, e.MessageAttributes = &body, p.attrs
	} else {
		body := s.snsEnvelope(t, sub, p, id, seq, now)
		e.MessageBody = &body
	}
	if t.fifo {
		g, d := p.groupID, p.dedupID
		e.MessageGroupId, e.MessageDeduplicationId = &g, &d
	}
	if _, aerr := s.send(q, e); aerr != nil {
		s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("sns %s -> %s: %s", t.arn, q.arn, aerr.Error()))
	}
}

// snsEnvelope is the JSON notification SNS delivers when raw delivery is off.
func (s *Server) snsEnvelope(t *topic, sub *subscription, p *snsPublish, id, seq string, now time.Time) string {
	type attr struct{ Type, Value string }
	env := struct {
		Type              string
		MessageId         string
		SequenceNumber    string `json:",omitempty"`
		TopicArn          string
		Subject           string `json:",omitempty"`
		Message           string
		Timestamp         string
		SignatureVersion  string
		Signature         string
		SigningCertURL    string
		UnsubscribeURL    string
		MessageAttributes map[string]attr `json:",omitempty"`
	}{Type: "Notification", MessageId: id, SequenceNumber: seq, TopicArn: t.arn, Subject: p.subject, Message: p.message,
		Timestamp: now.UTC().Format("2006-01-02T15:04:05.000Z"), SignatureVersion: "1",
		Signature:      base64.StdEncoding.EncodeToString([]byte("awstest-unsigned-" + id)),
		SigningCertURL: "https://sns." + s.opts.Region + ".amazonaws.com/SimpleNotificationService-awstest.pem",
		UnsubscribeURL: s.URL + "/?Action=Unsubscribe&SubscriptionArn=" + url.QueryEscape(sub.arn)}
	for k, a := range p.attrs {
		if env.MessageAttributes == nil {
			env.MessageAttributes = map[string]attr{}
		}
		v := ""
		if a.StringValue != nil {
			v = *a.StringValue
		} else {
			v = base64.StdEncoding.EncodeToString(a.BinaryValue)
		}
		env.MessageAttributes[k] = attr{Type: a.DataType, Value: v}
	}
	b, _ := json.Marshal(env)
	return string(b)
}

func (s *Server) publishBatch(f form) (*xmlWriter, *apiError) {
	t, aerr := s.topicOf(f)
	if aerr != nil {
		return nil, aerr
	}
	members := f.members("PublishBatchRequestEntries")
	if len(members) == 0 {
		return nil, snsInvalid("EmptyBatchRequest", "EmptyBatchRequest", "The batch request doesn't contain any entries")
	}
	if len(members) > sqsMaxBatch {
		return nil, snsInvalid("TooManyEntriesInBatchRequest", "TooManyEntriesInBatchRequest", "The batch request contains more entries than permissible")
	}
	entries := make([]snsPublish, len(members))
	seen := map[string]bool{}
	total := 0
	for i, p := range members {
		e := &entries[i]
		e.id = f.get(p + "Id")
		if !validBatchID(e.id) {
			return nil, snsInvalid("InvalidBatchEntryId", "InvalidBatchEntryId", "The Id of a batch entry in a batch request doesn't abide by the specification")
		}
		if seen[e.id] {
			return nil, snsInvalid("BatchEntryIdsNotDistinct", "BatchEntryIdsNotDistinct", "Two or more batch entries in the request have the same Id")
		}
		seen[e.id] = true
		e.message, e.subject, e.structure = f.get(p+"Message"), f.get(p+"Subject"), f.get(p+"MessageStructure")
		e.groupID, e.dedupID = f.get(p+"MessageGroupId"), f.get(p+"MessageDeduplicationId")
		if e.attrs, aerr = f.attrs(p + "MessageAttributes"); aerr != nil {
			return nil, aerr
		}
		total += e.size()
	}
	if total > t.maxMessage() {
		return nil, snsInvalid("BatchRequestTooLong", "BatchRequestTooLong", "The length of all the messages put together is more than the limit")
	}
	x := &xmlWriter{}
	var ok, failed xmlWriter
	for i := range entries {
		e := &entries[i]
		if aerr := s.checkPublish(t, e); aerr != nil {
			failed.open("member")
			failed.elem("Id", e.id)
			failed.elem("Code", aerr.QueryCode)
			failed.elem("Message", aerr.Message)
			failed.elem("SenderFault", "true")
			failed.close("member")
			continue
		}
		id, seq := s.publish(t, e)
		ok.open("member")
		ok.elem("Id", e.id)
		ok.elem("MessageId", id)
		if seq != "" {
			ok.elem("SequenceNumber", seq)
		}
		ok.close("member")
	}
	x.b.WriteString("<Successful>" + ok.b.String() + "</Successful><Failed>" + failed.b.String() + "</Failed>")
	return x, nil
}
