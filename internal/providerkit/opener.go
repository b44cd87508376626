package providerkit

import (
	"context"
	"net/url"

	"github.com/crossbus/crossbus/driver"
)

// Opener makes the driver.Opener a provider registers with crossbus.Register
// from its URL parser and its constructor.
func Opener[O any, P driver.Provider](parse func(*url.URL) (O, error), open func(context.Context, O) (P, error)) driver.Opener {
	return func(ctx context.Context, u *url.URL) (driver.Provider, error) {
		o, err := parse(u)
		if err != nil {
			return nil, err
		}
		p, err := open(ctx, o)
		if err != nil {
			return nil, err // not p: a nil *Provider is a non-nil driver.Provider
		}
		return p, nil
	}
}
