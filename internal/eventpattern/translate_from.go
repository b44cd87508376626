package eventpattern

import "fmt"

// FromFilter returns the compiled pattern of a crossbus filter that is an
// event pattern (a crossbus.EventPattern: it has String, the canonical JSON,
// and Err), for the providers' push-down translators. Any other filter is
// not translatable (ErrNotTranslatable).
func FromFilter(f any) (*Pattern, error) {
	ep, ok := f.(interface {
		String() string
		Err() error
	})
	if !ok || f == nil {
		return nil, fmt.Errorf("%T is not an event pattern: %w", f, ErrNotTranslatable)
	}
	if err := ep.Err(); err != nil {
		return nil, err
	}
	return Compile([]byte(ep.String()))
}
