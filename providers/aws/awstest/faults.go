package awstest

import "net/http"

// Fault makes matching requests fail with an AWS error, for testing how
// code handles throttling and outages. Add one with InjectFault.
type Fault struct {
	// Service is "sqs", "sns" or "events"; Operation is the API name, e.g.
	// "SendMessageBatch" ("" matches every operation of the service).
	Service, Operation string
	// Code is the error code, e.g. "ThrottlingException" or
	// "RequestThrottled"; Status the HTTP status (default 400; 5xx codes
	// are server faults, which the SDK retries).
	Code   string
	Status int
	// Times is how many requests fail before the fault is spent
	// (0: every request until it is removed).
	Times int
}

// InjectFault adds f and returns a function that removes it.
func (s *Server) InjectFault(f Fault) (remove func()) {
	if f.Status == 0 {
		f.Status = http.StatusBadRequest
	}
	p := &f
	s.mu.Lock()
	s.faults = append(s.faults, p)
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for i, x := range s.faults {
			if x == p {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
				return
			}
		}
	}
}

// fault returns the error of the first fault matching the call, if any.
func (s *Server) fault(service, op string) *apiError {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Service != service || f.Operation != "" && f.Operation != op {
			continue
		}
		if f.Times > 0 {
			f.Times--
			if f.Times == 0 {
				s.faults = append(s.faults[:i], s.faults[i+1:]...)
			}
		}
		typ := f.Code
		if service == "sqs" && sqsShapes[f.Code] != "" {
			typ = sqsShapes[f.Code]
		}
		return &apiError{Status: f.Status, Type: typ, QueryCode: f.Code, Sender: f.Status < 500, Message: "injected fault"}
	}
	return nil
}

// sqsShapes maps the SQS error codes the SDK reports to the error shapes the
// JSON protocol names, where they differ.
var sqsShapes = map[string]string{
	"AWS.SimpleQueueService.NonExistentQueue":             "QueueDoesNotExist",
	"AWS.SimpleQueueService.PurgeQueueInProgress":         "PurgeQueueInProgress",
	"AWS.SimpleQueueService.TooManyEntriesInBatchRequest": "TooManyEntriesInBatchRequest",
	"AWS.SimpleQueueService.UnsupportedOperation":         "UnsupportedOperation",
	"AWS.SimpleQueueService.MessageNotInflight":           "MessageNotInflight",
	"KMS.ThrottlingException":                             "KmsThrottled",
	"KMS.AccessDeniedException":                           "KmsAccessDenied",
	"QueueAlreadyExists":                                  "QueueNameExists",
}

// PutEventsEntry is an entry of a PutEvents call, as FailEventEntries sees it.
type PutEventsEntry struct {
	Source, DetailType, Detail, EventBusName string
	Resources                                []string
}

// FailEventEntries makes PutEvents fail every entry for which fn returns a
// non-empty error code (for example "ThrottlingException" or
// "InternalFailure", which callers should retry). nil removes the hook.
func (s *Server) FailEventEntries(fn func(PutEventsEntry) (code, message string)) {
	s.mu.Lock()
	s.entryFn = fn
	s.mu.Unlock()
}
