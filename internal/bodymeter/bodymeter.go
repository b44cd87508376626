// Package bodymeter counts request body bytes, for tests that prove an
// HTTP endpoint refuses a caller before it reads the body.
package bodymeter

import (
	"io"
	"net/http"
	"sync/atomic"
)

// Body is a request body of Size bytes, made up as it is read; N counts how
// many bytes its reader consumed.
type Body struct {
	Size int64
	N    atomic.Int64
}

// Read implements io.Reader.
func (b *Body) Read(p []byte) (int, error) {
	left := b.Size - b.N.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), left))
	clear(p[:n])
	b.N.Add(int64(n))
	return n, nil
}

// Meter wraps Handler and counts in N the request body bytes it reads.
type Meter struct {
	Handler http.Handler
	N       atomic.Int64
}

type meteredBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (m meteredBody) Read(p []byte) (int, error) {
	n, err := m.ReadCloser.Read(p)
	m.n.Add(int64(n))
	return n, err
}

// ServeHTTP implements http.Handler.
func (m *Meter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// A copy of the request: the server's own request keeps its body, so
	// the server handles an unread body as it would without the meter.
	metered := r.WithContext(r.Context())
	metered.Body = meteredBody{ReadCloser: r.Body, n: &m.N}
	m.Handler.ServeHTTP(w, metered)
}
