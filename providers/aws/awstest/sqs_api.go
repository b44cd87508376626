package awstest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"time"
)

// sqsCall runs one SQS JSON-protocol operation.
func (s *Server) sqsCall(r *http.Request, op string, body []byte) (any, *apiError) {
	var in sqsInput
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, clientErr("SerializationException", "SerializationException", "Malformed request body: %v", err)
		}
	}
	if op == "ReceiveMessage" {
		return s.receiveMessage(r, &in)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case "CreateQueue":
		return s.createQueue(&in)
	case "GetQueueUrl":
		if in.QueueName == "" {
			return nil, missingParam("QueueName")
		}
		if in.QueueOwnerAWSAccountId != "" && in.QueueOwnerAWSAccountId != s.opts.AccountID {
			return nil, errNoQueue()
		}
		q := s.queues[in.QueueName]
		if q == nil {
			return nil, errNoQueue()
		}
		return map[string]string{"QueueUrl": q.url}, nil
	case "ListQueues":
		var urls []string
		for name, q := range s.queues {
			if strings.HasPrefix(name, in.QueueNamePrefix) {
				urls = append(urls, q.url)
			}
		}
		sort.Strings(urls)
		if in.MaxResults > 0 && len(urls) > in.MaxResults {
			urls = urls[:in.MaxResults]
		}
		return map[string][]string{"QueueUrls": urls}, nil
	case "DeleteQueue":
		q, aerr := s.queueByURL(in.QueueUrl)
		if aerr != nil {
			return nil, aerr
		}
		delete(s.queues, q.name)
		q.signal()
		return struct{}{}, nil
	case "GetQueueAttributes":
		return s.getQueueAttributes(&in)
	case "SetQueueAttributes":
		q, aerr := s.queueByURL(in.QueueUrl)
		if aerr != nil {
			return nil, aerr
		}
		if aerr := s.setQueueAttrs(q, in.Attributes, false); aerr != nil {
			return nil, aerr
		}
		return struct{}{}, nil
	case "PurgeQueue":
		q, aerr := s.queueByURL(in.QueueUrl)
		if aerr != nil {
			return nil, aerr
		}
		now := s.now()
		if !q.lastPurge.IsZero() && now.Sub(q.lastPurge) < sqsPurgeInterval {
			return nil, clientErr("PurgeQueueInProgress", "AWS.SimpleQueueService.PurgeQueueInProgress",
				"Only one PurgeQueue operation on %s is allowed every 60 seconds.", q.name)
		}
		q.lastPurge = now
		q.msgs, q.byID = nil, map[string]*message{}
		return struct{}{}, nil
	case "SendMessage":
		q, aerr := s.queueByURL(in.QueueUrl)
		if aerr != nil {
			return nil, aerr
		}
		res, aerr := s.send(q, in.sendEntry)
		if aerr != nil {
			return nil, aerr
		}
		res.Id = ""
		return res, nil
	case "SendMessageBatch":
		return s.sendBatch(&in)
	case "DeleteMessage":
		q, aerr := s.queueByURL(in.QueueUrl)
		if aerr != nil {
			return nil, aerr
		}
		if aerr := s.deleteMessage(q, in.ReceiptHandle); aerr != nil {
			return nil, aerr
		}
		return struct{}{}, nil
	case "DeleteMessageBatch":
		return s.batch(&in, func(q *queue, e batchEntry) *apiError { return s.deleteMessage(q, e.ReceiptHandle) })
	case "ChangeMessageVisibility":
		q, aerr := s.queueByURL(in.QueueUrl)
		if aerr != nil {
			return nil, aerr
		}
		if in.VisibilityTimeout == nil {
			return nil, missingParam("VisibilityTimeout")
		}
		if aerr := s.changeVisibility(q, in.ReceiptHandle, *in.VisibilityTimeout); aerr != nil {
			return nil, aerr
		}
		return struct{}{}, nil
	case "ChangeMessageVisibilityBatch":
		return s.batch(&in, func(q *queue, e batchEntry) *apiError {
			if e.VisibilityTimeout == nil {
				return missingParam("VisibilityTimeout")
			}
			return s.changeVisibility(q, e.ReceiptHandle, *e.VisibilityTimeout)
		})
	}
	return nil, clientErr("UnknownOperationException", "InvalidAction", "The action %s is not valid for this endpoint.", op)
}

// sqsInput holds the members of every SQS request the server handles.
type sqsInput struct {
	QueueUrl               string
	QueueName              string
	QueueNamePrefix        string
	QueueOwnerAWSAccountId string
	MaxResults             int
	Attributes             map[string]string
	AttributeNames         []string
	ReceiptHandle          string
	VisibilityTimeout      *int
	sendEntry
	Entries []batchEntry

	MessageSystemAttributeNames []string
	MessageAttributeNames       []string
	MaxNumberOfMessages         *int
	WaitTimeSeconds             *int
	ReceiveRequestAttemptId     string
}

type sendEntry struct {
	Id                      string             `json:",omitempty"`
	MessageBody             *string            `json:",omitempty"`
	DelaySeconds            *int               `json:",omitempty"`
	MessageAttributes       map[string]msgAttr `json:",omitempty"`
	MessageSystemAttributes map[string]msgAttr `json:",omitempty"`
	MessageDeduplicationId  *string            `json:",omitempty"`
	MessageGroupId          *string            `json:",omitempty"`
}

type batchEntry struct {
	sendEntry
	ReceiptHandle     string
	VisibilityTimeout *int
}

type sendResult struct {
	Id                           string `json:",omitempty"`
	MessageId                    string
	MD5OfMessageBody             string
	MD5OfMessageAttributes       string `json:",omitempty"`
	MD5OfMessageSystemAttributes string `json:",omitempty"`
	SequenceNumber               string `json:",omitempty"`
}

type batchFailure struct {
	Id          string
	SenderFault bool
	Code        string
	Message     string
}

// send validates and enqueues one message.
func (s *Server) send(q *queue, e sendEntry) (sendResult, *apiError) {
	if e.MessageBody == nil || *e.MessageBody == "" {
		return sendResult{}, missingParam("MessageBody")
	}
	body := *e.MessageBody
	if r, ok := validText(body); !ok {
		return sendResult{}, clientErr("InvalidMessageContents", "InvalidMessageContents",
			"Invalid binary character '#x%X' was found in the message body, the set of allowed characters is #x9 | #xA | #xD | #x20 to #xD7FF | #xE000 to #xFFFD | #x10000 to #x10FFFF", r)
	}
	size, aerr := checkAttrs(e.MessageAttributes, sqsMaxAttributes)
	if aerr != nil {
		return sendResult{}, aerr
	}
	for k := range e.MessageSystemAttributes {
		if k != "AWSTraceHeader" {
			return sendResult{}, invalidParam("Message system attribute name '%s' is invalid.", k)
		}
	}
	if max := q.intAttr("MaximumMessageSize"); len(body)+size > max {
		return sendResult{}, invalidParam("One or more parameters are invalid. Reason: Message must be shorter than %d bytes.", max)
	}
	delay := time.Duration(q.intAttr("DelaySeconds")) * time.Second
	m := &message{body: body, attrs: e.MessageAttributes, sysAttrs: e.MessageSystemAttributes, senderID: s.opts.AccessKeyID}
	if e.DelaySeconds != nil && *e.DelaySeconds != 0 {
		if q.fifo {
			return sendResult{}, invalidParam("Value %d for parameter DelaySeconds is invalid. Reason: The request include parameter that is not valid for this queue type.", *e.DelaySeconds)
		}
		if *e.DelaySeconds < 0 || time.Duration(*e.DelaySeconds)*time.Second > sqsMaxDelay {
			return sendResult{}, invalidParam("Value %d for parameter DelaySeconds is invalid. Reason: DelaySeconds must be >= 0 and <= 900.", *e.DelaySeconds)
		}
		delay = time.Duration(*e.DelaySeconds) * time.Second
	}
	if e.MessageGroupId != nil {
		if !validFIFOToken(*e.MessageGroupId) {
			return sendResult{}, invalidParam("Value %s for parameter MessageGroupId is invalid. Reason: MessageGroupId can only include alphanumeric and punctuation characters. 1 to 128 in length.", *e.MessageGroupId)
		}
		m.groupID = *e.MessageGroupId
	}
	if q.fifo {
		if m.groupID == "" {
			return sendResult{}, missingParam("MessageGroupId")
		}
		switch {
		case e.MessageDeduplicationId != nil:
			if !validFIFOToken(*e.MessageDeduplicationId) {
				return sendResult{}, invalidParam("Value %s for parameter MessageDeduplicationId is invalid. Reason: MessageDeduplicationId can only include alphanumeric and punctuation characters. 1 to 128 in length.", *e.MessageDeduplicationId)
			}
			m.dedupID = *e.MessageDeduplicationId
		case q.attrs["ContentBasedDeduplication"] == "true":
			m.dedupID = contentDedupID(body)
		default:
			return sendResult{}, invalidParam("The queue should either have ContentBasedDeduplication enabled or MessageDeduplicationId provided explicitly")
		}
	} else if e.MessageDeduplicationId != nil {
		return sendResult{}, invalidParam("The request include parameter MessageDeduplicationId that is not valid for this queue type")
	}
	m.md5Body, m.md5Attrs, m.md5Sys = md5Hex(body), md5OfAttrs(e.MessageAttributes), md5OfAttrs(e.MessageSystemAttributes)
	m.id = s.newMessageID()
	res := sendResult{Id: e.Id, MD5OfMessageBody: m.md5Body, MD5OfMessageAttributes: m.md5Attrs, MD5OfMessageSystemAttributes: m.md5Sys}
	if dup := s.enqueue(q, m, delay); dup != nil {
		res.MessageId, res.SequenceNumber = dup.messageID, dup.seq
		return res, nil
	}
	res.MessageId, res.SequenceNumber = m.id, m.seq
	return res, nil
}

// checkBatch applies the rules common to every batch request.
func checkBatch(entries []batchEntry) *apiError {
	if len(entries) == 0 {
		return clientErr("EmptyBatchRequest", "AWS.SimpleQueueService.EmptyBatchRequest", "There should be at least one SendMessageBatchRequestEntry in the request.")
	}
	if len(entries) > sqsMaxBatch {
		return clientErr("TooManyEntriesInBatchRequest", "AWS.SimpleQueueService.TooManyEntriesInBatchRequest",
			"Maximum number of entries per request are %d. You have sent %d.", sqsMaxBatch, len(entries))
	}
	seen := map[string]bool{}
	for _, e := range entries {
		if !validBatchID(e.Id) {
			return clientErr("InvalidBatchEntryId", "AWS.SimpleQueueService.InvalidBatchEntryId",
				"A batch entry id can only contain alphanumeric characters, hyphens and underscores. It can be at most 80 letters long.")
		}
		if seen[e.Id] {
			return clientErr("BatchEntryIdsNotDistinct", "AWS.SimpleQueueService.BatchEntryIdsNotDistinct", "Id %s repeated.", e.Id)
		}
		seen[e.Id] = true
	}
	return nil
}

func (s *Server) sendBatch(in *sqsInput) (any, *apiError) {
	q, aerr := s.queueByURL(in.QueueUrl)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkBatch(in.Entries); aerr != nil {
		return nil, aerr
	}
	total := 0
	for _, e := range in.Entries {
		if e.MessageBody != nil {
			total += len(*e.MessageBody)
		}
		for n, a := range e.MessageAttributes {
			total += a.size(n)
		}
	}
	if max := q.intAttr("MaximumMessageSize"); total > max {
		return nil, clientErr("BatchRequestTooLong", "AWS.SimpleQueueService.BatchRequestTooLong",
			"Batch requests cannot be longer than %d bytes. You have sent %d bytes.", max, total)
	}
	out := struct {
		Successful []sendResult
		Failed     []batchFailure
	}{Successful: []sendResult{}, Failed: []batchFailure{}}
	for _, e := range in.Entries {
		e.sendEntry.Id = e.Id
		res, aerr := s.send(q, e.sendEntry)
		if aerr != nil {
			out.Failed = append(out.Failed, failure(e.Id, aerr))
			continue
		}
		out.Successful = append(out.Successful, res)
	}
	return out, nil
}

func failure(id string, e *apiError) batchFailure {
	code := e.QueryCode
	if code == "" {
		code = e.Type
	}
	return batchFailure{Id: id, SenderFault: e.Sender, Code: code, Message: e.Message}
}

// batch runs a delete or visibility-change batch.
func (s *Server) batch(in *sqsInput, fn func(*queue, batchEntry) *apiError) (any, *apiError) {
	q, aerr := s.queueByURL(in.QueueUrl)
	if aerr != nil {
		return nil, aerr
	}
	if aerr := checkBatch(in.Entries); aerr != nil {
		return nil, aerr
	}
	type ok struct{ Id string }
	out := struct {
		Successful []ok
		Failed     []batchFailure
	}{Successful: []ok{}, Failed: []batchFailure{}}
	for _, e := range in.Entries {
		if aerr := fn(q, e); aerr != nil {
			out.Failed = append(out.Failed, failure(e.Id, aerr))
			continue
		}
		out.Successful = append(out.Successful, ok{e.Id})
	}
	return out, nil
}
