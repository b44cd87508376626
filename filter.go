package crossbus

import (
	"fmt"
	"strings"

	"github.com/crossbus/crossbus/internal/eventpattern"
)

// Filter decides whether a route handles an event. Filters run locally for
// every provider; a provider may also push an event pattern down to the
// service to save traffic, never to change results (a Pub/Sub subscription
// filter, a Service Bus rule, an EventBridge rule, an SNS filter policy; see
// the README's Filters section). A route skips its own matching only when
// the provider reports that the subscription's filter is exactly its
// pattern (Subscription.NativeFilter).
type Filter interface {
	Match(e *Event) bool
}

// FilterFunc adapts a function to a Filter. Function filters run locally only;
// providers cannot push them down.
type FilterFunc func(e *Event) bool

// Match calls f.
func (f FilterFunc) Match(e *Event) bool { return f(e) }

// EventPattern is a compiled Amazon EventBridge event pattern, matched
// against the CloudEvent's JSON form: the context attributes and extensions
// as top-level fields (specversion, id, source, type, subject, time,
// datacontenttype, dataschema, extensions by name) and "data" as the decoded
// JSON data. Every EventBridge operator is supported: exact values and value
// lists, prefix, suffix, equals-ignore-case, anything-but, numeric, exists,
// wildcard, cidr and $or. It is a Filter, evaluated without allocating.
//
// The builders (TypeIs, Field(...).Numeric, All, ...) never panic: a pattern
// built from input that makes no valid pattern carries the error, matches
// nothing, and is refused by WithFilter with an error wrapping
// ErrInvalidPattern (see Err).
type EventPattern struct {
	p   *eventpattern.Pattern
	err error
}

// build runs an internal builder, turning its refusal of the input into the
// pattern's error.
func build(f func() *eventpattern.Pattern) (ep *EventPattern) {
	defer func() {
		if v := recover(); v != nil {
			msg := strings.TrimPrefix(fmt.Sprint(v), "pattern: ")
			ep = &EventPattern{err: fmt.Errorf("%w: %s", ErrInvalidPattern, msg)}
		}
	}()
	return &EventPattern{p: f()}
}

// Err reports why the builders could not build the pattern (nil for a
// valid pattern).
func (p *EventPattern) Err() error { return p.err }

// CompilePattern compiles an EventBridge event pattern, for example
//
//	{"type": ["com.example.order.placed"], "data": {"total": [{"numeric": [">", 100]}]}}
func CompilePattern(json string) (*EventPattern, error) {
	p, err := eventpattern.Compile([]byte(json))
	if err != nil {
		return nil, errorf("event pattern: %w", err)
	}
	return &EventPattern{p: p}, nil
}

// MustPattern is CompilePattern for patterns known to be valid; it panics
// on an invalid one.
func MustPattern(json string) *EventPattern {
	p, err := CompilePattern(json)
	if err != nil {
		panic(err)
	}
	return p
}

// Match reports whether the event matches the pattern (never, for a pattern
// with an error).
func (p *EventPattern) Match(e *Event) bool { return p.err == nil && p.p.Match(e) }

// String returns the pattern as canonical JSON ("" for a pattern with an
// error).
func (p *EventPattern) String() string {
	if p.err != nil {
		return ""
	}
	return p.p.String()
}

// TypeIs matches events whose type is one of types (at least one).
func TypeIs(types ...string) *EventPattern {
	return build(func() *eventpattern.Pattern { return eventpattern.TypeIs(types...) })
}

// TypePrefix matches events whose type starts with one of prefixes.
func TypePrefix(prefixes ...string) *EventPattern {
	return anyPrefix(prefixes, eventpattern.TypePrefix)
}

// SourceIs matches events whose source is one of sources.
func SourceIs(sources ...string) *EventPattern {
	return build(func() *eventpattern.Pattern { return eventpattern.SourceIs(sources...) })
}

// SourcePrefix matches events whose source starts with one of prefixes.
func SourcePrefix(prefixes ...string) *EventPattern {
	return anyPrefix(prefixes, eventpattern.SourcePrefix)
}

// SubjectIs matches events whose subject is one of subjects.
func SubjectIs(subjects ...string) *EventPattern {
	return build(func() *eventpattern.Pattern { return eventpattern.SubjectIs(subjects...) })
}

// SubjectPrefix matches events whose subject starts with one of prefixes.
func SubjectPrefix(prefixes ...string) *EventPattern {
	return anyPrefix(prefixes, eventpattern.SubjectPrefix)
}

func anyPrefix(prefixes []string, one func(string) *eventpattern.Pattern) *EventPattern {
	if len(prefixes) == 0 {
		return &EventPattern{err: fmt.Errorf("%w: a prefix filter needs at least one prefix", ErrInvalidPattern)}
	}
	return build(func() *eventpattern.Pattern {
		ps := make([]*eventpattern.Pattern, len(prefixes))
		for i, p := range prefixes {
			ps[i] = one(p)
		}
		return eventpattern.Or(ps...)
	})
}

// FieldCondition builds a pattern on one field of the event's JSON form.
type FieldCondition struct{ path []string }

// Field starts a condition on a field: Field("data", "order", "total") is
// data.order.total; Field("tenant") is the tenant extension.
func Field(path ...string) FieldCondition { return FieldCondition{path} }

func (c FieldCondition) build(f func(eventpattern.FieldRef) *eventpattern.Pattern) *EventPattern {
	return build(func() *eventpattern.Pattern { return f(eventpattern.Field(c.path...)) })
}

// Equals matches any of the values (strings, numbers, booleans, nil).
func (c FieldCondition) Equals(values ...any) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Equals(values...) })
}

// Prefix matches strings starting with prefix.
func (c FieldCondition) Prefix(prefix string) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Prefix(prefix) })
}

// Suffix matches strings ending with suffix.
func (c FieldCondition) Suffix(suffix string) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Suffix(suffix) })
}

// EqualsIgnoreCase matches s in any letter case.
func (c FieldCondition) EqualsIgnoreCase(s string) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.EqualsIgnoreCase(s) })
}

// Wildcard matches with * standing for any run of characters.
func (c FieldCondition) Wildcard(w string) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Wildcard(w) })
}

// AnythingBut matches present values other than the given ones.
func (c FieldCondition) AnythingBut(values ...any) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.AnythingBut(values...) })
}

// Numeric compares numbers: op is one of "=", "<", "<=", ">", ">=".
func (c FieldCondition) Numeric(op string, bound float64) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Numeric(op, bound) })
}

// Between matches numbers with lo <= n <= hi.
func (c FieldCondition) Between(lo, hi float64) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Between(lo, hi) })
}

// Exists matches when the field is present (true) or absent (false).
func (c FieldCondition) Exists(present bool) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.Exists(present) })
}

// CIDR matches IP addresses inside the network.
func (c FieldCondition) CIDR(cidr string) *EventPattern {
	return c.build(func(f eventpattern.FieldRef) *eventpattern.Pattern { return f.CIDR(cidr) })
}

// All matches events every filter matches. Patterns combine into one
// pattern (so providers can still push them down); other filters are
// evaluated one by one.
//
// A nil filter, an invalid pattern among them, or patterns that cannot be
// combined (two value lists on one field) give a pattern carrying the error
// (see EventPattern), which WithFilter refuses.
func All(filters ...Filter) Filter {
	if err := checkFilters("All", filters); err != nil {
		return &EventPattern{err: err}
	}
	if ps, ok := patterns(filters); ok && len(ps) > 0 {
		return build(func() *eventpattern.Pattern { return eventpattern.And(ps...) })
	}
	return FilterFunc(func(e *Event) bool {
		for _, f := range filters {
			if !f.Match(e) {
				return false
			}
		}
		return true
	})
}

// Any matches events at least one filter matches. A nil filter or an
// invalid pattern among them gives a pattern carrying the error.
func Any(filters ...Filter) Filter {
	if err := checkFilters("Any", filters); err != nil {
		return &EventPattern{err: err}
	}
	if ps, ok := patterns(filters); ok && len(ps) > 1 {
		return build(func() *eventpattern.Pattern { return eventpattern.Or(ps...) })
	}
	return FilterFunc(func(e *Event) bool {
		for _, f := range filters {
			if f.Match(e) {
				return true
			}
		}
		return false
	})
}

// checkFilters refuses nil filters and patterns with errors.
func checkFilters(op string, filters []Filter) error {
	if len(filters) == 0 {
		return fmt.Errorf("%w: %s needs at least one filter", ErrInvalidPattern, op)
	}
	for i, f := range filters {
		if f == nil {
			return fmt.Errorf("%w: %s: filter %d is nil", ErrInvalidPattern, op, i)
		}
		if ep, ok := f.(*EventPattern); ok && ep.err != nil {
			return fmt.Errorf("%s: filter %d: %w", op, i, ep.err)
		}
	}
	return nil
}

func patterns(filters []Filter) ([]*eventpattern.Pattern, bool) {
	ps := make([]*eventpattern.Pattern, 0, len(filters))
	for _, f := range filters {
		ep, ok := f.(*EventPattern)
		if !ok {
			return nil, false
		}
		ps = append(ps, ep.p)
	}
	return ps, true
}

// patternOf is a route filter as the canonical JSON of its event pattern, for
// providers that push filters down ("" when the filter is not a pattern).
func patternOf(f Filter) string {
	if ep, ok := f.(*EventPattern); ok && ep.err == nil {
		return ep.String()
	}
	return ""
}
