package awstest

import (
	"encoding/json"
	"strconv"
	"strings"
)

func (s *Server) createQueue(in *sqsInput) (any, *apiError) {
	name := in.QueueName
	if name == "" {
		return nil, missingParam("QueueName")
	}
	fifo := in.Attributes["FifoQueue"] == "true"
	if !validQueueName(name) || strings.HasSuffix(name, ".fifo") != fifo {
		return nil, invalidParam("Can only include alphanumeric characters, hyphens, or underscores. 1 to 80 in length. The name of a FIFO queue must end with the .fifo suffix and the queue needs FifoQueue=true.")
	}
	if q := s.queues[name]; q != nil {
		for k, v := range in.Attributes {
			if q.attrs[k] != v && !(k == "FifoQueue" && v == "true" && q.fifo) {
				return nil, clientErr("QueueNameExists", "QueueAlreadyExists",
					"A queue already exists with the same name and a different value for attribute %s", k)
			}
		}
		return map[string]string{"QueueUrl": q.url}, nil
	}
	now := s.now()
	q := &queue{name: name, url: s.queueURL(name), arn: s.queueARN(name), fifo: fifo, created: now, modified: now,
		byID: map[string]*message{}, dedup: map[string]dedupRecord{}, changed: make(chan struct{}),
		attrs: map[string]string{"DelaySeconds": "0", "MaximumMessageSize": strconv.Itoa(sqsMaxMessageBytes),
			"MessageRetentionPeriod": "345600", "ReceiveMessageWaitTimeSeconds": "0", "VisibilityTimeout": "30",
			"SqsManagedSseEnabled": "true"}}
	if fifo {
		q.attrs["FifoQueue"] = "true"
		q.attrs["ContentBasedDeduplication"] = "false"
		q.attrs["DeduplicationScope"] = "queue"
		q.attrs["FifoThroughputLimit"] = "perQueue"
	}
	if aerr := s.setQueueAttrs(q, in.Attributes, true); aerr != nil {
		return nil, aerr
	}
	s.queues[name] = q
	return map[string]string{"QueueUrl": q.url}, nil
}

func intRange(name, v string, lo, hi int) *apiError {
	n, err := strconv.Atoi(v)
	if err != nil || n < lo || n > hi {
		return clientErr("InvalidAttributeValue", "InvalidAttributeValue", "Invalid value for the parameter %s.", name)
	}
	return nil
}

func (s *Server) setQueueAttrs(q *queue, attrs map[string]string, creating bool) *apiError {
	for k, v := range attrs {
		var aerr *apiError
		switch k {
		case "DelaySeconds":
			aerr = intRange(k, v, 0, 900)
		case "MaximumMessageSize":
			aerr = intRange(k, v, 1024, sqsMaxMessageBytes)
		case "MessageRetentionPeriod":
			aerr = intRange(k, v, 60, 1209600)
		case "ReceiveMessageWaitTimeSeconds":
			aerr = intRange(k, v, 0, sqsMaxWait)
		case "VisibilityTimeout":
			aerr = intRange(k, v, 0, 43200)
		case "KmsDataKeyReusePeriodSeconds":
			aerr = intRange(k, v, 60, 86400)
		case "KmsMasterKeyId":
		case "SqsManagedSseEnabled":
			if v != "true" && v != "false" {
				aerr = clientErr("InvalidAttributeValue", "InvalidAttributeValue", "Invalid value for the parameter %s.", k)
			}
		case "Policy", "RedriveAllowPolicy":
			if v != "" && !json.Valid([]byte(v)) {
				aerr = clientErr("InvalidAttributeValue", "InvalidAttributeValue", "Invalid value for the parameter %s. Reason: not valid JSON.", k)
			}
		case "RedrivePolicy":
			aerr = s.checkRedrive(q, v)
		case "FifoQueue":
			if !creating {
				aerr = clientErr("InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute %s.", k)
			}
		case "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit":
			if !q.fifo {
				aerr = clientErr("InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute %s.", k)
			}
		default:
			aerr = clientErr("InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute %s.", k)
		}
		if aerr != nil {
			return aerr
		}
	}
	for k, v := range attrs {
		q.attrs[k] = v
	}
	q.modified = s.now()
	q.signal()
	return nil
}

func (s *Server) checkRedrive(q *queue, v string) *apiError {
	if v == "" {
		return nil
	}
	bad := func(reason string) *apiError {
		return invalidParam("Value %s for parameter RedrivePolicy is invalid. Reason: %s", v, reason)
	}
	var p redrivePolicy
	if err := json.Unmarshal([]byte(v), &p); err != nil {
		return bad("Invalid value for the parameter RedrivePolicy: not valid JSON.")
	}
	if p.DeadLetterTargetArn == "" || p.MaxReceiveCount == nil {
		return bad("Redrive policy does not contain mandatory attribute: deadLetterTargetArn and maxReceiveCount.")
	}
	tmp := &queue{attrs: map[string]string{"RedrivePolicy": v}}
	_, n, _ := tmp.redrive()
	if n < 1 || n > 1000 {
		return bad("Invalid value for maxReceiveCount: must be an integer from 1 to 1000.")
	}
	dlq := s.queueByARN(p.DeadLetterTargetArn)
	if dlq == nil {
		return bad("Dead letter target does not exist.")
	}
	if dlq.fifo != q.fifo {
		return bad("Dead-letter queue must be same type of queue as the source.")
	}
	return nil
}

func (s *Server) getQueueAttributes(in *sqsInput) (any, *apiError) {
	q, aerr := s.queueByURL(in.QueueUrl)
	if aerr != nil {
		return nil, aerr
	}
	all := map[string]string{}
	for k, v := range q.attrs {
		if v != "" {
			all[k] = v
		}
	}
	vis, inflight, delayed := s.counts(q)
	all["QueueArn"] = q.arn
	all["ApproximateNumberOfMessages"] = strconv.Itoa(vis)
	all["ApproximateNumberOfMessagesNotVisible"] = strconv.Itoa(inflight)
	all["ApproximateNumberOfMessagesDelayed"] = strconv.Itoa(delayed)
	all["CreatedTimestamp"] = strconv.FormatInt(q.created.Unix(), 10)
	all["LastModifiedTimestamp"] = strconv.FormatInt(q.modified.Unix(), 10)
	out := map[string]string{}
	for _, n := range in.AttributeNames {
		if n == "All" {
			out = all
			break
		}
		v, ok := all[n]
		if !ok && !contains(readOnlyQueueAttrs, n) && !knownQueueAttr(n) {
			return nil, clientErr("InvalidAttributeName", "InvalidAttributeName", "Unknown Attribute %s.", n)
		}
		if ok {
			out[n] = v
		}
	}
	return map[string]map[string]string{"Attributes": out}, nil
}

func knownQueueAttr(n string) bool {
	switch n {
	case "DelaySeconds", "MaximumMessageSize", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds", "VisibilityTimeout",
		"KmsDataKeyReusePeriodSeconds", "KmsMasterKeyId", "SqsManagedSseEnabled", "Policy", "RedriveAllowPolicy",
		"RedrivePolicy", "FifoQueue", "ContentBasedDeduplication", "DeduplicationScope", "FifoThroughputLimit":
		return true
	}
	return false
}

var readOnlyQueueAttrs = []string{"QueueArn", "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
	"ApproximateNumberOfMessagesDelayed", "CreatedTimestamp", "LastModifiedTimestamp"}
