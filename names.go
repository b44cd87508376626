package crossbus

import (
	"fmt"
	"unicode/utf8"
)

// Portable names. A topic or subscription name that works on one provider
// must work on every other, so the portable layer accepts only the names
// every supported service accepts, and checks them before any provider sees
// them: 3 to 50 characters, ASCII letters, digits and '-', starting with a
// letter and ending with a letter or digit. (Event Grid allows only letters,
// digits and '-' and at most 50 characters; Pub/Sub needs at least 3
// characters starting with a letter; Service Bus needs a letter or digit at
// both ends; NATS refuses '.', '*', '>' and spaces in stream names.) Some
// services compare names without regard to case (Service Bus, Event Grid), so
// names that differ only in case should not be used for different entities.
//
// Where a service's own entities have other names (an SQS queue URL, an SNS
// topic ARN, a FIFO queue's ".fifo" suffix), the provider's options map the
// portable name onto them.
const (
	MinNameLength = 3
	MaxNameLength = 50
)

// ValidateName reports whether name is a portable topic or subscription
// name. The error wraps ErrInvalidName and names the first character that is
// not allowed and its position, or the length and the limit.
func ValidateName(name string) error {
	if p := nameProblem(name); p != "" {
		return fmt.Errorf("%w %q: %s (portable names are %d-%d letters, digits and '-', starting with a letter and ending with a letter or digit)",
			ErrInvalidName, name, p, MinNameLength, MaxNameLength)
	}
	return nil
}

// nameProblem describes what is wrong with name ("" when nothing is). It does
// not allocate for a valid name: it runs on every Publish.
func nameProblem(name string) string {
	n := len(name)
	switch {
	case n == 0:
		return "empty"
	case n < MinNameLength:
		return fmt.Sprintf("%d characters, fewer than %d", n, MinNameLength)
	case n > MaxNameLength:
		return fmt.Sprintf("%d characters, more than %d", n, MaxNameLength)
	}
	for i := 0; i < n; i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		digit := c >= '0' && c <= '9'
		switch {
		case i == 0 && !letter:
			r, _ := utf8.DecodeRuneInString(name)
			return fmt.Sprintf("must start with a letter, not %q", r)
		case letter || digit:
		case c == '-' && i < n-1:
		case c == '-':
			return "must end with a letter or digit, not '-'"
		default:
			r, _ := utf8.DecodeRuneInString(name[i:])
			return fmt.Sprintf("character %q at position %d is not allowed", r, i)
		}
	}
	return ""
}

// checkNames validates a topic and subscription name pair for a route or
// subscription.
func checkNames(topic, subscription string) error {
	if err := ValidateName(topic); err != nil {
		return fmt.Errorf("topic: %w", err)
	}
	if err := ValidateName(subscription); err != nil {
		return fmt.Errorf("subscription: %w", err)
	}
	return nil
}
