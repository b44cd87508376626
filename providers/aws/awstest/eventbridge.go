package awstest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"strings"
	"time"

	"github.com/crossbus/crossbus/internal/eventpattern"
)

const (
	ebMaxEntries       = 10
	ebMaxDetailType    = 128
	ebMaxTargetsOfRule = 5
)

type eventBus struct {
	name, arn string
	rules     map[string]*rule
	order     []string // rule names in creation order
}

type rule struct {
	name, arn, bus string
	patternSrc     string
	pattern        *eventpattern.Pattern
	state          string
	description    string
	schedule       string
	targets        []ebTarget
}

type ebTarget struct {
	Id            string
	Arn           string
	Input         string         `json:",omitempty"`
	InputPath     string         `json:",omitempty"`
	SqsParameters *sqsParameters `json:",omitempty"`
}

type sqsParameters struct {
	MessageGroupId string `json:",omitempty"`
}

func (s *Server) newBus(name string) *eventBus {
	return &eventBus{name: name, arn: "arn:aws:events:" + s.opts.Region + ":" + s.opts.AccountID + ":event-bus/" + name, rules: map[string]*rule{}}
}

func ebErr(typ, format string, args ...any) *apiError {
	return &apiError{Status: http.StatusBadRequest, Type: typ, Sender: true, Message: fmt.Sprintf(format, args...)}
}

// busNamed resolves a bus name or ARN ("" is the default bus).
func (s *Server) busNamed(name string) (*eventBus, *apiError) {
	if name == "" {
		name = "default"
	}
	if i := strings.LastIndex(name, ":event-bus/"); i >= 0 && strings.HasPrefix(name, "arn:") {
		name = name[i+len(":event-bus/"):]
	}
	b := s.buses[name]
	if b == nil {
		return nil, ebErr("ResourceNotFoundException", "Event bus %s does not exist.", name)
	}
	return b, nil
}

type ebInput struct {
	Name, EventBusName, EventPattern, State, Description, ScheduleExpression, Rule string
	Force                                                                          bool
	Targets                                                                        []ebTarget
	Ids                                                                            []string
	Entries                                                                        []ebEntry
}

type ebEntry struct {
	Source, DetailType, Detail, EventBusName, TraceHeader *string
	Resources                                             []string
	Time                                                  *float64
}

func validBusName(n string) bool {
	if n == "" || len(n) > 256 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("/.-_", c) >= 0) {
			return false
		}
	}
	return true
}

// eventsCall runs one EventBridge JSON 1.1 operation.
func (s *Server) eventsCall(op string, body []byte) (any, *apiError) {
	var in ebInput
	if len(body) > 0 {
		if err := json.Unmarshal(body, &in); err != nil {
			return nil, ebErr("SerializationException", "Malformed request body: %v", err)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch op {
	case "CreateEventBus":
		if !validBusName(in.Name) || strings.HasPrefix(in.Name, "aws.") {
			return nil, ebErr("ValidationException", "1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [/\\.\\-_A-Za-z0-9]+", in.Name)
		}
		if s.buses[in.Name] != nil {
			return nil, ebErr("ResourceAlreadyExistsException", "Event bus %s already exists.", in.Name)
		}
		b := s.newBus(in.Name)
		s.buses[in.Name] = b
		return map[string]string{"EventBusArn": b.arn}, nil
	case "DescribeEventBus":
		b, aerr := s.busNamed(in.Name)
		if aerr != nil {
			return nil, aerr
		}
		return map[string]string{"Name": b.name, "Arn": b.arn}, nil
	case "DeleteEventBus":
		if in.Name == "default" {
			return nil, ebErr("ValidationException", "Cannot delete event bus default.")
		}
		delete(s.buses, in.Name)
		return struct{}{}, nil
	case "PutRule":
		return s.putRule(&in)
	case "DescribeRule":
		r, aerr := s.ruleNamed(in.EventBusName, in.Name)
		if aerr != nil {
			return nil, aerr
		}
		out := map[string]string{"Name": r.name, "Arn": r.arn, "State": r.state, "EventBusName": r.bus}
		if r.patternSrc != "" {
			out["EventPattern"] = r.patternSrc
		}
		if r.description != "" {
			out["Description"] = r.description
		}
		if r.schedule != "" {
			out["ScheduleExpression"] = r.schedule
		}
		return out, nil
	case "DeleteRule":
		r, aerr := s.ruleNamed(in.EventBusName, in.Name)
		if aerr != nil {
			return struct{}{}, nil // deleting a missing rule succeeds
		}
		if len(r.targets) > 0 && !in.Force {
			return nil, ebErr("ValidationException", "Rule can't be deleted since it has targets.")
		}
		b := s.buses[r.bus]
		delete(b.rules, r.name)
		for i, n := range b.order {
			if n == r.name {
				b.order = append(b.order[:i], b.order[i+1:]...)
				break
			}
		}
		return struct{}{}, nil
	case "PutTargets":
		return s.putTargets(&in)
	case "RemoveTargets":
		r, aerr := s.ruleNamed(in.EventBusName, in.Rule)
		if aerr != nil {
			return nil, aerr
		}
		kept := r.targets[:0]
		for _, t := range r.targets {
			if !contains(in.Ids, t.Id) {
				kept = append(kept, t)
			}
		}
		r.targets = kept
		return map[string]any{"FailedEntryCount": 0, "FailedEntries": []any{}}, nil
	case "ListTargetsByRule":
		r, aerr := s.ruleNamed(in.EventBusName, in.Rule)
		if aerr != nil {
			return nil, aerr
		}
		return map[string][]ebTarget{"Targets": append([]ebTarget{}, r.targets...)}, nil
	case "PutEvents":
		return s.putEvents(&in)
	}
	return nil, ebErr("UnknownOperationException", "The operation %s is not supported by the test server.", op)
}

func (s *Server) ruleNamed(bus, name string) (*rule, *apiError) {
	b, aerr := s.busNamed(bus)
	if aerr != nil {
		return nil, aerr
	}
	r := b.rules[name]
	if r == nil {
		return nil, ebErr("ResourceNotFoundException", "Rule %s does not exist on EventBus %s.", name, b.name)
	}
	return r, nil
}

func (s *Server) putRule(in *ebInput) (any, *apiError) {
	b, aerr := s.busNamed(in.EventBusName)
	if aerr != nil {
		return nil, aerr
	}
	if !validBusName(in.Name) || len(in.Name) > 64 || strings.Contains(in.Name, "/") {
		return nil, ebErr("ValidationException", "1 validation error detected: Value '%s' at 'name' failed to satisfy constraint: Member must satisfy regular expression pattern: [\\.\\-_A-Za-z0-9]+", in.Name)
	}
	if in.EventPattern == "" && in.ScheduleExpression == "" {
		return nil, ebErr("ValidationException", "Parameter(s) EventPattern or ScheduleExpression must be specified.")
	}
	if in.ScheduleExpression != "" && b.name != "default" {
		return nil, ebErr("ValidationException", "ScheduleExpression is supported only on the default event bus.")
	}
	var p *eventpattern.Pattern
	if in.EventPattern != "" {
		var err error
		if p, err = eventpattern.Compile([]byte(in.EventPattern)); err != nil {
			return nil, ebErr("InvalidEventPatternException", "Event pattern is not valid. Reason: %v", err)
		}
	}
	state := in.State
	if state == "" {
		state = "ENABLED"
	}
	if state != "ENABLED" && state != "DISABLED" {
		return nil, ebErr("ValidationException", "Value '%s' at 'state' failed to satisfy constraint: Member must satisfy enum value set: [ENABLED, DISABLED]", state)
	}
	arn := "arn:aws:events:" + s.opts.Region + ":" + s.opts.AccountID + ":rule/" + in.Name
	if b.name != "default" {
		arn = "arn:aws:events:" + s.opts.Region + ":" + s.opts.AccountID + ":rule/" + b.name + "/" + in.Name
	}
	r := b.rules[in.Name]
	if r == nil {
		r = &rule{name: in.Name, arn: arn, bus: b.name}
		b.rules[in.Name] = r
		b.order = append(b.order, in.Name)
	}
	r.patternSrc, r.pattern, r.state, r.description, r.schedule = in.EventPattern, p, state, in.Description, in.ScheduleExpression
	return map[string]string{"RuleArn": r.arn}, nil
}

func (s *Server) putTargets(in *ebInput) (any, *apiError) {
	r, aerr := s.ruleNamed(in.EventBusName, in.Rule)
	if aerr != nil {
		return nil, aerr
	}
	if len(in.Targets) == 0 || len(in.Targets) > ebMaxEntries {
		return nil, ebErr("ValidationException", "1 validation error detected: Value at 'targets' failed to satisfy constraint: Member must have length less than or equal to 10 and greater than or equal to 1")
	}
	type failed struct{ TargetId, ErrorCode, ErrorMessage string }
	var fails []failed
	for _, t := range in.Targets {
		p := strings.Split(t.Arn, ":")
		switch {
		case t.Id == "" || len(t.Id) > 64:
			fails = append(fails, failed{t.Id, "ValidationException", "Target Id must be 1 to 64 characters."})
			continue
		case len(p) != 6 || p[0] != "arn" || p[2] != "sqs":
			fails = append(fails, failed{t.Id, "ValidationException", "The test server delivers only to SQS queue targets; " + t.Arn + " is not one."})
			continue
		case strings.HasSuffix(t.Arn, ".fifo") && (t.SqsParameters == nil || t.SqsParameters.MessageGroupId == ""):
			fails = append(fails, failed{t.Id, "ValidationException", "Parameter(s) SqsParameters must be specified for target: " + t.Id + "."})
			continue
		}
		replaced := false
		for i := range r.targets {
			if r.targets[i].Id == t.Id {
				r.targets[i], replaced = t, true
			}
		}
		if !replaced {
			if len(r.targets) >= ebMaxTargetsOfRule {
				return nil, ebErr("LimitExceededException", "The requested resource exceeds the maximum number allowed.")
			}
			r.targets = append(r.targets, t)
		}
	}
	return map[string]any{"FailedEntryCount": len(fails), "FailedEntries": append([]failed{}, fails...)}, nil
}

// entrySize is a PutEvents entry's size as EventBridge documents it: 14
// bytes for Time when present, plus the UTF-8 bytes of Source, DetailType,
// Detail and each resource.
func entrySize(e *ebEntry) int {
	n := 0
	if e.Time != nil {
		n += 14
	}
	for _, p := range []*string{e.Source, e.DetailType, e.Detail} {
		if p != nil {
			n += len(*p)
		}
	}
	for _, r := range e.Resources {
		n += len(r)
	}
	return n
}

type ebResult struct {
	EventId      string `json:",omitempty"`
	ErrorCode    string `json:",omitempty"`
	ErrorMessage string `json:",omitempty"`
}

func (s *Server) putEvents(in *ebInput) (any, *apiError) {
	if len(in.Entries) == 0 || len(in.Entries) > ebMaxEntries {
		return nil, ebErr("ValidationException", "1 validation error detected: Value at 'entries' failed to satisfy constraint: Member must have length less than or equal to %d and greater than or equal to 1", ebMaxEntries)
	}
	total := 0
	for i := range in.Entries {
		total += entrySize(&in.Entries[i])
	}
	if total > s.opts.EventBridgeMaxEntryBytes {
		return nil, ebErr("ValidationException", "Total size of the entries in the request is over the limit.")
	}
	results := make([]ebResult, len(in.Entries))
	failedN := 0
	for i := range in.Entries {
		code, msg := s.checkEntry(&in.Entries[i])
		if code == "" && s.entryFn != nil {
			e := &in.Entries[i]
			code, msg = s.entryFn(PutEventsEntry{Source: deref(e.Source), DetailType: deref(e.DetailType), Detail: deref(e.Detail),
				EventBusName: deref(e.EventBusName), Resources: e.Resources})
		}
		if code != "" {
			results[i] = ebResult{ErrorCode: code, ErrorMessage: msg}
			failedN++
			continue
		}
		results[i] = ebResult{EventId: s.newMessageID()}
		s.route(&in.Entries[i], results[i].EventId)
	}
	return map[string]any{"FailedEntryCount": failedN, "Entries": results}, nil
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func (s *Server) checkEntry(e *ebEntry) (code, msg string) {
	for _, f := range []struct {
		name string
		v    *string
	}{{"Source", e.Source}, {"DetailType", e.DetailType}, {"Detail", e.Detail}} {
		if f.v == nil || *f.v == "" {
			return "InvalidArgument", fmt.Sprintf("Parameter %s is not valid. Reason: %s is a required argument.", f.name, f.name)
		}
	}
	if len(*e.DetailType) > ebMaxDetailType {
		return "InvalidArgument", fmt.Sprintf("Parameter DetailType is not valid. Reason: DetailType is %d characters, over the limit of %d.", len(*e.DetailType), ebMaxDetailType)
	}
	if strings.HasPrefix(*e.Source, "aws.") {
		return "NotAuthorizedForSourceException", "Not authorized for the source."
	}
	d := bytes.TrimSpace([]byte(*e.Detail))
	if !json.Valid(d) || len(d) == 0 || d[0] != '{' {
		return "MalformedDetail", "Detail is malformed."
	}
	return "", ""
}

// route builds the event's envelope and delivers it to the targets of every
// enabled rule of its bus whose pattern matches. Events for a bus that does
// not exist are accepted and dropped, as EventBridge does.
func (s *Server) route(e *ebEntry, id string) {
	b, aerr := s.busNamed(deref(e.EventBusName))
	if aerr != nil {
		s.deliveryErrors = append(s.deliveryErrors, "eventbridge: "+aerr.Message+" The event was accepted and dropped.")
		return
	}
	t := s.now()
	if e.Time != nil {
		sec, frac := math.Modf(*e.Time)
		t = time.Unix(int64(sec), int64(frac*1e9))
	}
	resources := e.Resources
	if resources == nil {
		resources = []string{}
	}
	env := struct {
		Version    string          `json:"version"`
		ID         string          `json:"id"`
		DetailType string          `json:"detail-type"`
		Source     string          `json:"source"`
		Account    string          `json:"account"`
		Time       string          `json:"time"`
		Region     string          `json:"region"`
		Resources  []string        `json:"resources"`
		Detail     json.RawMessage `json:"detail"`
	}{"0", id, *e.DetailType, *e.Source, s.opts.AccountID, t.UTC().Format("2006-01-02T15:04:05Z"), s.opts.Region, resources, json.RawMessage(*e.Detail)}
	doc, err := json.Marshal(env)
	if err != nil {
		s.deliveryErrors = append(s.deliveryErrors, "eventbridge: encode envelope: "+err.Error())
		return
	}
	for _, name := range b.order {
		r := b.rules[name]
		if r.state != "ENABLED" || r.pattern == nil {
			continue
		}
		if ok, _ := r.pattern.MatchJSON(doc); !ok {
			continue
		}
		for _, tg := range r.targets {
			s.deliverEvent(r, tg, doc, id)
		}
	}
}

func (s *Server) deliverEvent(r *rule, tg ebTarget, doc []byte, id string) {
	q := s.queueByARN(tg.Arn)
	if q == nil {
		s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("eventbridge rule %s -> %s: queue does not exist", r.arn, tg.Arn))
		return
	}
	if !policyAllows(q.attrs["Policy"], "events.amazonaws.com", r.arn, q.arn) {
		s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("eventbridge rule %s -> %s: the queue policy does not allow events.amazonaws.com to send for this rule", r.arn, q.arn))
		return
	}
	body := string(doc)
	switch {
	case tg.Input != "":
		body = tg.Input
	case tg.InputPath != "":
		body = jsonPath(doc, tg.InputPath)
	}
	e := sendEntry{MessageBody: &body}
	if q.fifo {
		g, d := tg.SqsParameters.MessageGroupId, id
		e.MessageGroupId, e.MessageDeduplicationId = &g, &d
	}
	if _, aerr := s.send(q, e); aerr != nil {
		s.deliveryErrors = append(s.deliveryErrors, fmt.Sprintf("eventbridge rule %s -> %s: %s", r.arn, q.arn, aerr.Error()))
	}
}

// jsonPath evaluates a simple InputPath such as "$.detail" or
// "$.detail.order".
func jsonPath(doc []byte, path string) string {
	var v any = json.RawMessage(doc)
	for _, key := range strings.Split(strings.TrimPrefix(strings.TrimPrefix(path, "$"), "."), ".") {
		if key == "" {
			continue
		}
		var m map[string]json.RawMessage
		raw, _ := v.(json.RawMessage)
		if json.Unmarshal(raw, &m) != nil {
			return "null"
		}
		r, ok := m[key]
		if !ok {
			return "null"
		}
		v = r
	}
	raw, _ := v.(json.RawMessage)
	return string(raw)
}
