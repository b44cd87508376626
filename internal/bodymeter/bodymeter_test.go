package bodymeter

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestMeterCountsWhatTheHandlerReads(t *testing.T) {
	read := 0
	m := &Meter{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 100)
		n, _ := io.ReadFull(r.Body, buf)
		read = n
	})}
	body := &Body{Size: 1000}
	m.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, "/", body))
	assert.Equal(t, 100, read)
	assert.Equal(t, int64(100), m.N.Load(), "the handler read 100 bytes")
	assert.GreaterOrEqual(t, body.N.Load(), int64(100))

	all, err := io.ReadAll(&Body{Size: 5000})
	require.NoError(t, err)
	assert.Len(t, all, 5000, "a body yields exactly Size bytes")
}
