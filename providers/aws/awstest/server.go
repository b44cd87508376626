// Package awstest is an in-process server for Amazon SQS, SNS and EventBridge
// that the real AWS SDK for Go v2 talks to over HTTP, for testing code that
// uses those services without an AWS account or network.
//
//	srv := awstest.NewServer(awstest.Options{})
//	defer srv.Close()
//	client := sqs.NewFromConfig(srv.Config())
//
// It speaks each service's current wire protocol: SQS in its JSON protocol
// (X-Amz-Target AmazonSQS.*), SNS in its Query protocol (form-encoded Action,
// XML responses) and EventBridge in its JSON 1.1 protocol (AWSEvents.*). Every
// request must carry a valid Signature Version 4 signature made with the
// server's credentials (Config supplies them); the signature is verified as
// AWS does.
//
// What it emulates, following the services' documentation:
//
//   - SQS: CreateQueue, GetQueueUrl, GetQueueAttributes, SetQueueAttributes,
//     ListQueues, DeleteQueue, PurgeQueue, SendMessage(Batch),
//     ReceiveMessage with long polling, DeleteMessage(Batch),
//     ChangeMessageVisibility(Batch). Visibility timeouts, delays, receive
//     counts, retention, redrive to a dead-letter queue after maxReceiveCount,
//     FIFO queues (message groups with at most one group's messages in flight
//     at a time, the 5-minute deduplication window, content-based
//     deduplication, sequence numbers), message attribute validation and the
//     MD5 digests the SDK checks. Limits: 10 entries a batch, 10 message
//     attributes, MaximumMessageSize (default 1 MiB) per message and per batch,
//     12 hours of visibility.
//   - SNS: CreateTopic, ListTopics, DeleteTopic, GetTopicAttributes,
//     SetTopicAttributes, Subscribe (SQS endpoints, RawMessageDelivery),
//     Unsubscribe, Get/SetSubscriptionAttributes, ListSubscriptionsByTopic,
//     Publish and PublishBatch with fan-out to the
//     subscribed queues: raw delivery copies the message and its attributes,
//     otherwise the queue receives the SNS JSON notification envelope. FIFO
//     topics pass the message group and deduplication ids on. Subscription
//     filter policies (FilterPolicy, with FilterPolicyScope MessageAttributes
//     or MessageBody) decide which subscriptions get a message: exact,
//     prefix, suffix, equals-ignore-case, anything-but, numeric, exists and
//     cidr matching, nested keys (body scope) and "$or", with SNS's limits
//     of 5 keys and 150 value combinations.
//   - EventBridge: CreateEventBus, DescribeEventBus, DeleteEventBus,
//     PutEvents, PutRule with an event pattern, DescribeRule, DeleteRule,
//     PutTargets (SQS queues), RemoveTargets, ListTargetsByRule. Events are
//     matched against the rules of their bus with the EventBridge pattern
//     language and delivered to SQS targets as the EventBridge JSON envelope,
//     provided the queue's policy lets events.amazonaws.com send to it.
//
// For tests of error handling, InjectFault makes chosen operations fail,
// FailEventEntries makes PutEvents refuse chosen entries, Requests counts the
// calls made, and DeliveryErrors lists SNS and EventBridge deliveries to SQS
// that failed.
//
// Where it differs from AWS: everything is in memory and strongly
// consistent; standard queues keep arrival order and short polls see every
// visible message (real SQS samples servers and may reorder); a redriven
// message starts over with no receives in its dead-letter queue;
// ReceiveRequestAttemptId, KMS and FIFO high-throughput mode are not
// emulated; filter policies take effect at once (SNS may take up to 15
// minutes), and "$or" alternatives count towards the 5-key limit by the
// largest of them; SNS message signatures and
// HTTP/Lambda/email endpoints are not emulated; EventBridge input
// transformers, archives, schedules and non-SQS targets are not emulated
// (InputPath supports simple paths such as "$.detail"); IAM is reduced to
// the credential check and the queue-policy check for SNS and EventBridge
// deliveries. As in AWS, PutEvents accepts events for a bus that does not
// exist and drops them (DeliveryErrors says so).
package awstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
)

// Options configure a Server. The zero value is valid.
type Options struct {
	// Region is the server's region (default "us-east-1").
	Region string
	// AccountID owns every entity (default "123456789012").
	AccountID string
	// AccessKeyID and SecretAccessKey are the only credentials the server
	// accepts (defaults "AKIDAWSTEST" and "awstest-secret").
	AccessKeyID     string
	SecretAccessKey string
	// EventBridgeMaxEntryBytes bounds the total size of a PutEvents call as
	// EventBridge computes it (default 262,144 bytes).
	EventBridgeMaxEntryBytes int
	// Now returns the current time (default time.Now); tests may move time
	// forward with it. Long polls still wait in real time.
	Now func() time.Time
}

// Server is a running test server. It is safe for concurrent use.
type Server struct {
	// URL is the base endpoint, e.g. "http://127.0.0.1:34567".
	URL string

	opts   Options
	http   *httptest.Server
	client *http.Client

	mu      sync.Mutex
	queues  map[string]*queue // by name
	topics  map[string]*topic // by ARN
	subs    map[string]*subscription
	buses   map[string]*eventBus // by name
	seq     uint64
	closed  chan struct{}
	faults  []*Fault
	entryFn func(PutEventsEntry) (code, message string)

	deliveryErrors []string
	requests       map[string]int
}

// NewServer starts a server on a loopback port. Close it when done.
func NewServer(o Options) *Server {
	if o.Region == "" {
		o.Region = "us-east-1"
	}
	if o.AccountID == "" {
		o.AccountID = "123456789012"
	}
	if o.AccessKeyID == "" {
		o.AccessKeyID = "AKIDAWSTEST"
	}
	if o.SecretAccessKey == "" {
		o.SecretAccessKey = "awstest-secret"
	}
	if o.EventBridgeMaxEntryBytes == 0 {
		o.EventBridgeMaxEntryBytes = 256 * 1024
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Server{opts: o, queues: map[string]*queue{}, topics: map[string]*topic{}, subs: map[string]*subscription{},
		buses: map[string]*eventBus{}, closed: make(chan struct{}), requests: map[string]int{}}
	s.buses["default"] = s.newBus("default")
	s.http = httptest.NewServer(s)
	s.URL = s.http.URL
	tr := s.http.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 512, 512
	s.client = &http.Client{Transport: tr}
	return s
}

// Close stops the server; pending long polls return at once.
func (s *Server) Close() {
	s.mu.Lock()
	select {
	case <-s.closed:
		s.mu.Unlock()
		return
	default:
		close(s.closed)
	}
	s.mu.Unlock()
	s.http.CloseClientConnections()
	s.http.Close()
	s.client.CloseIdleConnections()
}

// Region returns the server's region.
func (s *Server) Region() string { return s.opts.Region }

// AccountID returns the account that owns the server's entities.
func (s *Server) AccountID() string { return s.opts.AccountID }

// Config returns an AWS configuration that reaches the server: its region,
// its credentials and its URL as the base endpoint of every service.
func (s *Server) Config() aws.Config {
	return aws.Config{
		Region:       s.opts.Region,
		Credentials:  credentials.NewStaticCredentialsProvider(s.opts.AccessKeyID, s.opts.SecretAccessKey, ""),
		BaseEndpoint: aws.String(s.URL),
		HTTPClient:   s.client,
	}
}

// DeliveryErrors returns the deliveries from SNS or EventBridge to SQS that
// failed (for example a queue policy that does not allow EventBridge, or a
// raw SNS message with more than 10 attributes), in the order they happened.
// AWS drops such deliveries or sends them to a dead-letter queue configured
// on the subscription or target; the server records why.
func (s *Server) DeliveryErrors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deliveryErrors...)
}

// Requests returns how many authenticated requests the server handled, by
// "service.Operation" (for example "sqs.ReceiveMessage"), so tests can check
// how many calls their code makes.
func (s *Server) Requests() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.requests))
	for k, v := range s.requests {
		out[k] = v
	}
	return out
}

func (s *Server) count(service, op string) {
	s.mu.Lock()
	s.requests[service+"."+op]++
	s.mu.Unlock()
}

func (s *Server) now() time.Time { return s.opts.Now() }

func (s *Server) nextID() uint64 {
	s.seq++
	return s.seq
}

// ServeHTTP implements http.Handler: it authenticates the request and
// dispatches it to the service it is addressed to.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 16<<20))
	if err != nil {
		http.Error(w, "read body: "+err.Error(), http.StatusBadRequest)
		return
	}
	target := r.Header.Get("X-Amz-Target")
	var svc service
	switch {
	case strings.HasPrefix(target, "AmazonSQS."):
		svc = serviceSQS
	case strings.HasPrefix(target, "AWSEvents."):
		svc = serviceEvents
	case r.Method == http.MethodPost && strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded"):
		svc = serviceSNS
	default:
		http.Error(w, "awstest: unrecognised request (no X-Amz-Target and not a Query-protocol form)", http.StatusBadRequest)
		return
	}
	if aerr := s.authenticate(r, body, svc.signingName()); aerr != nil {
		s.writeError(w, svc, aerr)
		return
	}
	switch svc {
	case serviceSQS:
		op := strings.TrimPrefix(target, "AmazonSQS.")
		s.count("sqs", op)
		if aerr := s.fault("sqs", op); aerr != nil {
			s.writeError(w, svc, aerr)
			return
		}
		out, aerr := s.sqsCall(r, op, body)
		s.writeJSON(w, svc, out, aerr)
	case serviceEvents:
		op := strings.TrimPrefix(target, "AWSEvents.")
		s.count("events", op)
		if aerr := s.fault("events", op); aerr != nil {
			s.writeError(w, svc, aerr)
			return
		}
		out, aerr := s.eventsCall(op, body)
		s.writeJSON(w, svc, out, aerr)
	case serviceSNS:
		s.snsCall(w, body)
	}
}

type service int

const (
	serviceSQS service = iota
	serviceSNS
	serviceEvents
)

func (v service) signingName() string {
	return [...]string{"sqs", "sns", "events"}[v]
}

// apiError is an error response: its code, the HTTP status and, for SQS's
// JSON protocol, the Query-compatible code the SDK reports.
type apiError struct {
	Status    int
	Type      string // the JSON __type / Query error code
	QueryCode string // SQS: x-amzn-query-error code ("" = Type)
	Sender    bool
	Message   string
}

// Error reports the code and message.
func (e *apiError) Error() string { return e.Type + ": " + e.Message }

func clientErr(typ, queryCode, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typ, QueryCode: queryCode, Sender: true, Message: fmt.Sprintf(format, args...)}
}

// invalidParam is SQS's generic validation failure.
func invalidParam(format string, args ...any) *apiError {
	return clientErr("InvalidParameterValue", "InvalidParameterValue", format, args...)
}

func missingParam(name string) *apiError {
	return clientErr("MissingParameter", "MissingParameter", "The request must contain the parameter %s.", name)
}

func (s *Server) writeJSON(w http.ResponseWriter, svc service, out any, aerr *apiError) {
	if aerr != nil {
		s.writeError(w, svc, aerr)
		return
	}
	var buf bytes.Buffer
	if err := json.NewEncoder(&buf).Encode(out); err != nil {
		s.writeError(w, svc, &apiError{Status: 500, Type: "InternalFailure", Message: err.Error()})
		return
	}
	ct := "application/x-amz-json-1.0"
	if svc == serviceEvents {
		ct = "application/x-amz-json-1.1"
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	_, _ = w.Write(buf.Bytes())
}

func (s *Server) requestID() string {
	s.mu.Lock()
	n := s.nextID()
	s.mu.Unlock()
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", n)
}

func (s *Server) writeError(w http.ResponseWriter, svc service, e *apiError) {
	if svc == serviceSNS {
		s.writeQueryError(w, e)
		return
	}
	typ := e.Type
	if svc == serviceSQS {
		typ = "com.amazonaws.sqs#" + e.Type
		code := e.QueryCode
		if code == "" {
			code = e.Type
		}
		fault := "Receiver"
		if e.Sender {
			fault = "Sender"
		}
		w.Header().Set("X-Amzn-Query-Error", code+";"+fault)
		w.Header().Set("Content-Type", "application/x-amz-json-1.0")
	} else {
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
	}
	w.Header().Set("X-Amzn-RequestId", s.requestID())
	w.WriteHeader(e.Status)
	b, _ := json.Marshal(map[string]string{"__type": typ, "message": e.Message})
	_, _ = w.Write(b)
}
