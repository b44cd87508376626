package sbtest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/Azure/go-amqp"
)

// DefaultRuleName is the name of the rule a subscription is created with.
const DefaultRuleName = "$Default"

// TrueFilter is the SQL expression of a filter that selects every message,
// as Service Bus writes its TrueFilter.
const TrueFilter = "1=1"

// Rule is a subscription rule: a topic message is copied into the
// subscription when the filter of at least one of its rules selects it
// (once, however many rules match). Rule actions are not emulated.
type Rule struct {
	// Name is the rule's name, unique in its subscription (compared
	// without regard to case).
	Name string
	// Filter is a SQL filter expression (see SQLFilter); "" is TrueFilter.
	Filter string
}

// compiledRule is a Rule with its filter compiled.
type compiledRule struct {
	Rule
	f *SQLFilter
}

func compileRule(r Rule) (compiledRule, error) {
	if r.Name == "" || len(r.Name) > 50 || strings.ContainsAny(r.Name, "/\\?#") {
		return compiledRule{}, fmt.Errorf("sbtest: invalid rule name %q (1-50 characters, no '/', '\\', '?', '#')", r.Name)
	}
	if r.Filter == "" {
		r.Filter = TrueFilter
	}
	f, err := CompileSQLFilter(r.Filter)
	if err != nil {
		return compiledRule{}, fmt.Errorf("rule %q: %w", r.Name, err)
	}
	return compiledRule{Rule: r, f: f}, nil
}

// selects reports whether a subscription with rules takes m. The topic's
// lock guards rules.
func selects(rules []compiledRule, m *amqp.Message) bool {
	for _, r := range rules {
		if r.f.Match(m) {
			return true
		}
	}
	return false
}

// subscriptionLocked finds a subscription of a topic; t.mu is held.
func (t *topic) subscriptionLocked(name string) *store { return t.subs[strings.ToLower(name)] }

// lockedSubscription runs fn with the topic's lock held on its subscription.
func (s *Server) lockedSubscription(topicName, sub string, fn func(t *topic, st *store) error) error {
	s.mu.Lock()
	t := s.topics[strings.ToLower(topicName)]
	s.mu.Unlock()
	if t == nil {
		return fmt.Errorf("%w: topic %q", ErrNotFound, topicName)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.subscriptionLocked(sub)
	if st == nil {
		return fmt.Errorf("%w: subscription %q of topic %q", ErrNotFound, sub, topicName)
	}
	return fn(t, st)
}

// AddRule adds a rule to a subscription. It fails with ErrExists when the
// subscription has a rule of that name, and with an error wrapping
// ErrInvalidFilter when the filter does not compile.
func (s *Server) AddRule(topicName, sub string, r Rule) error {
	cr, err := compileRule(r)
	if err != nil {
		return err
	}
	return s.lockedSubscription(topicName, sub, func(_ *topic, st *store) error {
		for _, have := range st.rules {
			if strings.EqualFold(have.Name, r.Name) {
				return fmt.Errorf("%w: rule %q of subscription %q", ErrExists, r.Name, sub)
			}
		}
		st.rules = append(slices.Clip(st.rules), cr)
		return nil
	})
}

// DeleteRule removes a rule from a subscription. A subscription without
// rules receives nothing.
func (s *Server) DeleteRule(topicName, sub, name string) error {
	return s.lockedSubscription(topicName, sub, func(_ *topic, st *store) error {
		for i, have := range st.rules {
			if strings.EqualFold(have.Name, name) {
				st.rules = slices.Delete(slices.Clone(st.rules), i, i+1)
				return nil
			}
		}
		return fmt.Errorf("%w: rule %q of subscription %q", ErrNotFound, name, sub)
	})
}

// Rules lists the rules of a subscription, in the order they were added.
func (s *Server) Rules(topicName, sub string) ([]Rule, error) {
	var out []Rule
	err := s.lockedSubscription(topicName, sub, func(_ *topic, st *store) error {
		for _, r := range st.rules {
			out = append(out, r.Rule)
		}
		return nil
	})
	return out, err
}
