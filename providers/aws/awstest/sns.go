package awstest

import (
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
)

const snsDefaultMaxMessage = 256 * 1024

type topic struct {
	name, arn string
	fifo      bool
	attrs     map[string]string
	subs      []*subscription
	dedup     map[string]dedupRecord
}

type subscription struct {
	arn, topicARN, protocol, endpoint string
	attrs                             map[string]string
	filter                            *snsPolicy // compiled FilterPolicy, nil without one
}

func (sub *subscription) raw() bool { return sub.attrs["RawMessageDelivery"] == "true" }

func snsNotFound(what string) *apiError {
	return &apiError{Status: http.StatusNotFound, Type: "NotFound", QueryCode: "NotFound", Sender: true, Message: what + " does not exist"}
}

func snsParam(format string, args ...any) *apiError {
	return snsInvalid("InvalidParameter", "InvalidParameter", "Invalid parameter: "+format, args...)
}

// snsCall runs one SNS Query-protocol action.
func (s *Server) snsCall(w http.ResponseWriter, body []byte) {
	vals, err := url.ParseQuery(string(body))
	if err != nil {
		s.writeQueryError(w, snsInvalid("MalformedQueryString", "MalformedQueryString", "%v", err))
		return
	}
	f := form(vals)
	action := f.get("Action")
	s.count("sns", action)
	if aerr := s.fault("sns", action); aerr != nil {
		s.writeQueryError(w, aerr)
		return
	}
	s.mu.Lock()
	x, aerr := s.snsAction(action, f)
	s.mu.Unlock()
	if aerr != nil {
		s.writeQueryError(w, aerr)
		return
	}
	s.writeQueryResult(w, action, x)
}

func (s *Server) snsAction(action string, f form) (*xmlWriter, *apiError) {
	x := &xmlWriter{}
	switch action {
	case "CreateTopic":
		t, aerr := s.createTopic(f.get("Name"), f.kv("Attributes"))
		if aerr != nil {
			return nil, aerr
		}
		x.elem("TopicArn", t.arn)
	case "ListTopics":
		arns := make([]string, 0, len(s.topics))
		for arn := range s.topics {
			arns = append(arns, arn)
		}
		sort.Strings(arns)
		x.open("Topics")
		for _, arn := range arns {
			x.open("member")
			x.elem("TopicArn", arn)
			x.close("member")
		}
		x.close("Topics")
	case "DeleteTopic":
		t := s.topics[f.get("TopicArn")]
		if t != nil {
			for _, sub := range t.subs {
				delete(s.subs, sub.arn)
			}
			delete(s.topics, t.arn)
		}
	case "GetTopicAttributes":
		t := s.topics[f.get("TopicArn")]
		if t == nil {
			return nil, snsNotFound("Topic")
		}
		all := map[string]string{"TopicArn": t.arn, "Owner": s.opts.AccountID, "SubscriptionsConfirmed": strconv.Itoa(len(t.subs)),
			"SubscriptionsPending": "0", "SubscriptionsDeleted": "0"}
		for k, v := range t.attrs {
			all[k] = v
		}
		writeKV(x, "Attributes", all)
	case "SetTopicAttributes":
		t := s.topics[f.get("TopicArn")]
		if t == nil {
			return nil, snsNotFound("Topic")
		}
		name := f.get("AttributeName")
		if aerr := checkTopicAttr(name, f.get("AttributeValue"), t.fifo, false); aerr != nil {
			return nil, aerr
		}
		t.attrs[name] = f.get("AttributeValue")
	case "Subscribe":
		sub, aerr := s.subscribe(f)
		if aerr != nil {
			return nil, aerr
		}
		x.elem("SubscriptionArn", sub.arn)
	case "Unsubscribe":
		sub := s.subs[f.get("SubscriptionArn")]
		if sub == nil {
			return nil, snsNotFound("Subscription")
		}
		delete(s.subs, sub.arn)
		if t := s.topics[sub.topicARN]; t != nil {
			for i, o := range t.subs {
				if o == sub {
					t.subs = append(t.subs[:i], t.subs[i+1:]...)
					break
				}
			}
		}
	case "SetSubscriptionAttributes":
		sub := s.subs[f.get("SubscriptionArn")]
		if sub == nil {
			return nil, snsNotFound("Subscription")
		}
		name, v := f.get("AttributeName"), f.get("AttributeValue")
		if aerr := checkSubAttr(name, v); aerr != nil {
			return nil, aerr
		}
		next := maps.Clone(sub.attrs)
		next[name] = v
		filter, aerr := compileFilter(next)
		if aerr != nil {
			return nil, aerr
		}
		sub.attrs[name], sub.filter = v, filter
	case "GetSubscriptionAttributes":
		sub := s.subs[f.get("SubscriptionArn")]
		if sub == nil {
			return nil, snsNotFound("Subscription")
		}
		all := map[string]string{"SubscriptionArn": sub.arn, "TopicArn": sub.topicARN, "Protocol": sub.protocol,
			"Endpoint": sub.endpoint, "Owner": s.opts.AccountID, "ConfirmationWasAuthenticated": "true", "PendingConfirmation": "false"}
		for k, v := range sub.attrs {
			all[k] = v
		}
		writeKV(x, "Attributes", all)
	case "ListSubscriptionsByTopic":
		t := s.topics[f.get("TopicArn")]
		if t == nil {
			return nil, snsNotFound("Topic")
		}
		x.open("Subscriptions")
		for _, sub := range t.subs {
			x.open("member")
			x.elem("TopicArn", t.arn)
			x.elem("Protocol", sub.protocol)
			x.elem("SubscriptionArn", sub.arn)
			x.elem("Owner", s.opts.AccountID)
			x.elem("Endpoint", sub.endpoint)
			x.close("member")
		}
		x.close("Subscriptions")
	case "Publish":
		t, aerr := s.topicOf(f)
		if aerr != nil {
			return nil, aerr
		}
		attrs, aerr := f.attrs("MessageAttributes")
		if aerr != nil {
			return nil, aerr
		}
		p := snsPublish{message: f.get("Message"), subject: f.get("Subject"), structure: f.get("MessageStructure"), attrs: attrs,
			groupID: f.get("MessageGroupId"), dedupID: f.get("MessageDeduplicationId")}
		if aerr := s.checkPublish(t, &p); aerr != nil {
			return nil, aerr
		}
		if size := p.size(); size > t.maxMessage() {
			return nil, snsParam("Message too long")
		}
		id, seq := s.publish(t, &p)
		x.elem("MessageId", id)
		if seq != "" {
			x.elem("SequenceNumber", seq)
		}
	case "PublishBatch":
		return s.publishBatch(f)
	default:
		return nil, snsInvalid("InvalidAction", "InvalidAction", "The action %s is not valid for this endpoint.", action)
	}
	return x, nil
}

func writeKV(x *xmlWriter, name string, m map[string]string) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	x.open(name)
	for _, k := range keys {
		x.open("entry")
		x.elem("key", k)
		x.elem("value", m[k])
		x.close("entry")
	}
	x.close(name)
}

func (s *Server) topicOf(f form) (*topic, *apiError) {
	arn := f.get("TopicArn")
	if arn == "" {
		arn = f.get("TargetArn")
	}
	if arn == "" {
		return nil, snsParam("TopicArn or TargetArn Reason: no value for required parameter")
	}
	t := s.topics[arn]
	if t == nil {
		return nil, snsNotFound("Topic")
	}
	return t, nil
}

func (t *topic) maxMessage() int {
	if n, err := strconv.Atoi(t.attrs["MaximumMessageSize"]); err == nil && n > 0 {
		return n
	}
	return snsDefaultMaxMessage
}

func checkTopicAttr(name, v string, fifo, creating bool) *apiError {
	switch name {
	case "FifoTopic":
		if !creating {
			return snsParam("AttributeName Reason: FifoTopic can only be set when the topic is created")
		}
	case "ContentBasedDeduplication", "FifoThroughputScope":
		if !fifo {
			return snsParam("Attributes Reason: %s is only valid for FIFO topics", name)
		}
	case "MaximumMessageSize":
		n, err := strconv.Atoi(v)
		if err != nil || n < 1024 || n > sqsMaxMessageBytes {
			return snsParam("MaximumMessageSize Reason: must be between 1024 and 1048576")
		}
	case "DisplayName", "Policy", "DeliveryPolicy", "KmsMasterKeyId", "SignatureVersion", "TracingConfig", "ArchivePolicy", "DataProtectionPolicy":
	default:
		return snsParam("Attributes Reason: Unknown attribute %s", name)
	}
	return nil
}

func checkSubAttr(name, v string) *apiError {
	switch name {
	case "RawMessageDelivery":
		if v != "true" && v != "false" {
			return snsParam("Attributes Reason: RawMessageDelivery: Invalid value [%s]. Must be true or false.", v)
		}
	case "FilterPolicy", "FilterPolicyScope", "RedrivePolicy", "DeliveryPolicy", "SubscriptionRoleArn", "ReplayPolicy":
	default:
		return snsParam("AttributeName Reason: Unknown attribute %s", name)
	}
	return nil
}

func (s *Server) createTopic(name string, attrs map[string]string) (*topic, *apiError) {
	fifo := attrs["FifoTopic"] == "true"
	base := strings.TrimSuffix(name, ".fifo")
	ok := base != "" && len(name) <= 256 && strings.HasSuffix(name, ".fifo") == fifo
	for i := 0; ok && i < len(base); i++ {
		c := base[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
	}
	if !ok {
		return nil, snsParam("Topic Name")
	}
	for k, v := range attrs {
		if aerr := checkTopicAttr(k, v, fifo, true); aerr != nil {
			return nil, aerr
		}
	}
	arn := "arn:aws:sns:" + s.opts.Region + ":" + s.opts.AccountID + ":" + name
	if t := s.topics[arn]; t != nil {
		for k, v := range attrs {
			if t.attrs[k] != v {
				return nil, snsParam("Attributes Reason: Topic already exists with different attributes")
			}
		}
		return t, nil
	}
	t := &topic{name: name, arn: arn, fifo: fifo, attrs: map[string]string{}, dedup: map[string]dedupRecord{}}
	for k, v := range attrs {
		t.attrs[k] = v
	}
	s.topics[arn] = t
	return t, nil
}

func (s *Server) subscribe(f form) (*subscription, *apiError) {
	t, aerr := s.topicOf(f)
	if aerr != nil {
		return nil, aerr
	}
	proto, endpoint := f.get("Protocol"), f.get("Endpoint")
	if proto != "sqs" {
		return nil, snsParam("Protocol Reason: the test server delivers only to sqs endpoints, not %q", proto)
	}
	p := strings.Split(endpoint, ":")
	if len(p) != 6 || p[0] != "arn" || p[2] != "sqs" {
		return nil, snsParam("SQS endpoint ARN")
	}
	if strings.HasSuffix(endpoint, ".fifo") != t.fifo {
		return nil, snsParam("Invalid parameter: Endpoint Reason: FIFO SNS Topics currently only support FIFO SQS Queues as endpoints, and standard topics standard queues")
	}
	attrs := f.kv("Attributes")
	for k, v := range attrs {
		if aerr := checkSubAttr(k, v); aerr != nil {
			return nil, aerr
		}
	}
	filter, aerr := compileFilter(attrs)
	if aerr != nil {
		return nil, aerr
	}
	for _, sub := range t.subs {
		if sub.protocol == proto && sub.endpoint == endpoint {
			return sub, nil
		}
	}
	sub := &subscription{arn: fmt.Sprintf("%s:%08x-0000-4000-8000-%012d", t.arn, s.nextID(), s.nextID()), topicARN: t.arn,
		protocol: proto, endpoint: endpoint, attrs: attrs, filter: filter}
	t.subs = append(t.subs, sub)
	s.subs[sub.arn] = sub
	return sub, nil
}

// snsPublish is one message to publish.
type snsPublish struct {
	id, message, subject, structure, groupID, dedupID string
	attrs                                             map[string]msgAttr
}

func (p *snsPublish) size() int {
	n := len(p.message)
	for k, a := range p.attrs {
		n += a.size(k)
	}
	return n
}
