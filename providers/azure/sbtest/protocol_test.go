package sbtest

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rawClient speaks the protocol by hand, for what the SDK does not show.
type rawClient struct {
	t  *testing.T
	nc net.Conn
	br *bufio.Reader
}

func dialRaw(t *testing.T, srv *Server) *rawClient {
	t.Helper()
	nc, err := net.Dial("tcp", srv.Addr())
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	require.NoError(t, nc.SetDeadline(time.Now().Add(10*time.Second)))
	return &rawClient{t: t, nc: nc, br: bufio.NewReader(nc)}
}

func (c *rawClient) header(want []byte) {
	c.t.Helper()
	got := make([]byte, 8)
	_, err := io.ReadFull(c.br, got)
	require.NoError(c.t, err)
	require.Equal(c.t, want, got)
}

func (c *rawClient) frame() frame {
	c.t.Helper()
	f, err := readFrame(c.br, make([]byte, 8), 1<<20)
	require.NoError(c.t, err)
	return f
}

func (c *rawClient) send(typ byte, p any) {
	c.t.Helper()
	_, err := c.nc.Write(appendFrame(nil, typ, 0, p, nil))
	require.NoError(c.t, err)
}

// open runs SASL ANONYMOUS and open with the given idle timeout (ms).
func (c *rawClient) open(idle uint32) frame {
	c.t.Helper()
	_, err := c.nc.Write(headerSASL)
	require.NoError(c.t, err)
	c.header(headerSASL)
	mechs := c.frame()
	require.Equal(c.t, uint64(descSASLMechanisms), mechs.body.code())
	assert.Contains(c.t, mechs.body.fields()[0], symbol("ANONYMOUS"))
	c.send(frameSASL, described{uint64(descSASLInit), []any{symbol("ANONYMOUS"), []byte("anonymous")}})
	outcome := c.frame()
	require.Equal(c.t, uint64(descSASLOutcome), outcome.body.code())
	assert.Equal(c.t, uint8(0), outcome.body.fields()[0], "sasl ok")
	_, err = c.nc.Write(headerAMQP)
	require.NoError(c.t, err)
	c.header(headerAMQP)
	c.send(frameAMQP, described{uint64(descOpen), []any{"raw", nil, uint32(65536), uint16(10), idle}})
	open := c.frame()
	require.Equal(c.t, uint64(descOpen), open.body.code())
	return open
}

func TestBrokerHeartbeatsAtHalfTheClientsIdleTimeout(t *testing.T) {
	srv, err := NewServer(Options{})
	require.NoError(t, err)
	defer srv.Close()
	c := dialRaw(t, srv)
	open := c.open(200)
	mfs, _ := fieldUint32(open.body.fields(), 2)
	assert.Equal(t, uint32(ourMaxFrame), mfs)
	// A silent client hears an empty frame every 100ms; without them the
	// reads below would wait for the connection deadline and fail.
	require.NoError(t, c.nc.SetReadDeadline(time.Now().Add(5*time.Second)))
	for i := 0; i < 3; i++ {
		assert.True(t, c.frame().empty, "heartbeat %d is an empty frame", i+1)
	}
}

func TestBrokerClosesOnProtocolErrors(t *testing.T) {
	srv, err := NewServer(Options{})
	require.NoError(t, err)
	defer srv.Close()

	c := dialRaw(t, srv)
	_, err = c.nc.Write([]byte("HTTP/1.1"))
	require.NoError(t, err)
	c.header(headerAMQP) // the broker states the protocol it speaks, then hangs up
	_, err = c.br.ReadByte()
	assert.ErrorIs(t, err, io.EOF)

	c = dialRaw(t, srv)
	c.open(0)
	c.send(frameAMQP, described{uint64(descAttach), []any{"l", uint32(0), false}}) // no session on channel 0
	f := c.frame()
	require.Equal(t, uint64(descClose), f.body.code())
	e := decodeError(field(f.body.fields(), 0))
	require.NotNil(t, e)
	assert.Equal(t, symbol("amqp:not-found"), e.Condition)
}
