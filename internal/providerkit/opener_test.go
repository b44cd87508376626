package providerkit_test

import (
	"context"
	"errors"
	"net/url"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/crossbus/crossbus/driver"
	"github.com/crossbus/crossbus/internal/providerkit"
)

type stubProvider struct {
	driver.Provider
	host string
}

func TestOpener(t *testing.T) {
	parse := func(u *url.URL) (string, error) {
		if u.Host == "" {
			return "", errors.New("no host")
		}
		return u.Host, nil
	}
	open := func(ctx context.Context, host string) (*stubProvider, error) {
		if host == "fail" {
			return nil, errors.New("cannot open")
		}
		return &stubProvider{host: host}, nil
	}
	opener := providerkit.Opener(parse, open)

	p, err := opener(context.Background(), &url.URL{Scheme: "x", Host: "h"})
	require.NoError(t, err)
	assert.Equal(t, "h", p.(*stubProvider).host)

	p, err = opener(context.Background(), &url.URL{Scheme: "x"})
	require.EqualError(t, err, "no host")
	assert.Nil(t, p)

	p, err = opener(context.Background(), &url.URL{Scheme: "x", Host: "fail"})
	require.EqualError(t, err, "cannot open")
	assert.True(t, p == nil, "a failed open returns a nil interface, not a nil *Provider in one")
}
