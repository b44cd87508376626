package crossbus

import (
	"fmt"
	"strings"
)

// Filter decides whether a route handles an event. Filters run locally for
// every provider; a provider may also push an equivalent filter down to the
// service to save traffic, never to change results.
type Filter interface {
	Match(e *Event) bool
}

// FilterFunc adapts a function to a Filter.
type FilterFunc func(e *Event) bool

// Match calls f.
func (f FilterFunc) Match(e *Event) bool { return f(e) }

// attrFilter matches one context attribute exactly or by prefix.
type attrFilter struct {
	attr   string // "type", "source" or "subject"
	values []string
	prefix bool
}

func (f *attrFilter) Match(e *Event) bool {
	var v string
	switch f.attr {
	case "type":
		v = e.Type()
	case "source":
		v = e.Source()
	case "subject":
		v = e.Subject()
	}
	for _, want := range f.values {
		if f.prefix && strings.HasPrefix(v, want) || !f.prefix && v == want {
			return true
		}
	}
	return false
}

func (f *attrFilter) String() string {
	op := "="
	if f.prefix {
		op = " prefix "
	}
	return fmt.Sprintf("%s%s%q", f.attr, op, f.values)
}

// TypeIs matches events whose type is one of types.
func TypeIs(types ...string) Filter { return &attrFilter{attr: "type", values: types} }

// TypePrefix matches events whose type starts with one of prefixes.
func TypePrefix(prefixes ...string) Filter {
	return &attrFilter{attr: "type", values: prefixes, prefix: true}
}

// SourceIs matches events whose source is one of sources.
func SourceIs(sources ...string) Filter { return &attrFilter{attr: "source", values: sources} }

// SourcePrefix matches events whose source starts with one of prefixes.
func SourcePrefix(prefixes ...string) Filter {
	return &attrFilter{attr: "source", values: prefixes, prefix: true}
}

// SubjectIs matches events whose subject is one of subjects.
func SubjectIs(subjects ...string) Filter { return &attrFilter{attr: "subject", values: subjects} }

// SubjectPrefix matches events whose subject starts with one of prefixes.
func SubjectPrefix(prefixes ...string) Filter {
	return &attrFilter{attr: "subject", values: prefixes, prefix: true}
}

// All matches events every filter matches (all of none matches everything).
func All(filters ...Filter) Filter {
	return FilterFunc(func(e *Event) bool {
		for _, f := range filters {
			if !f.Match(e) {
				return false
			}
		}
		return true
	})
}

// Any matches events at least one filter matches.
func Any(filters ...Filter) Filter {
	return FilterFunc(func(e *Event) bool {
		for _, f := range filters {
			if f.Match(e) {
				return true
			}
		}
		return false
	})
}
