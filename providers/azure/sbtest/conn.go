package sbtest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

var (
	headerSASL = []byte{'A', 'M', 'Q', 'P', 3, 1, 0, 0}
	headerAMQP = []byte{'A', 'M', 'Q', 'P', 0, 1, 0, 0}
)

const (
	ourMaxFrame     = 65536
	sessionWindow   = 1 << 20 // our incoming window, in transfer frames
	senderCredit    = 1000    // link credit granted to client senders
	defaultHandleMx = 4095
)

// conn is one client connection. One goroutine reads and handles frames;
// another writes what the rest of the broker queues with write.
type conn struct {
	srv *Server
	nc  net.Conn

	peerMaxFrame uint32
	heartbeat    time.Duration

	wmu     sync.Mutex
	wbuf    []byte
	wclosed bool
	wsig    chan struct{}

	// The reader goroutine alone touches these.
	sessions map[uint16]*session
	replies  map[string]*link // reply links by target address

	done     chan struct{}
	stopOnce sync.Once
}

func newConn(s *Server, nc net.Conn) *conn {
	return &conn{srv: s, nc: nc, peerMaxFrame: 512, wsig: make(chan struct{}, 1), sessions: map[uint16]*session{},
		replies: map[string]*link{}, done: make(chan struct{})}
}

// shutdown closes the network connection and stops the writer; frames
// queued later are dropped.
func (c *conn) shutdown() {
	c.stopOnce.Do(func() {
		c.wmu.Lock()
		c.wclosed = true
		c.wbuf = nil
		c.wmu.Unlock()
		close(c.done)
		_ = c.nc.Close()
	})
}

// serve runs the connection until it ends.
func (c *conn) serve() {
	defer c.shutdown()
	br := bufio.NewReaderSize(c.nc, 64*1024)
	if err := c.handshake(br); err != nil {
		return
	}
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writer()
	}()
	defer func() {
		c.cleanupAll()
		c.shutdown()
		<-writerDone
	}()
	hdr := make([]byte, 8)
	for {
		f, err := readFrame(br, hdr, ourMaxFrame)
		if err != nil {
			var ae *amqpError
			if errors.As(err, &ae) || !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) {
				c.closeWith(&amqpError{Condition: "amqp:decode-error", Description: err.Error()})
			}
			return
		}
		if f.empty {
			continue
		}
		if stop := c.handle(f); stop {
			return
		}
	}
}

// handshake runs the protocol headers, SASL ANONYMOUS (or no SASL), and
// the open exchange.
func (c *conn) handshake(br *bufio.Reader) error {
	_ = c.nc.SetDeadline(time.Now().Add(30 * time.Second))
	defer func() { _ = c.nc.SetDeadline(time.Time{}) }()
	hdr := make([]byte, 8)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return err
	}
	if bytes.Equal(hdr, headerSASL) {
		out := append([]byte(nil), headerSASL...)
		out = appendFrame(out, frameSASL, 0, described{uint64(descSASLMechanisms), []any{array{symbol("ANONYMOUS"), symbol("PLAIN")}}}, nil)
		if _, err := c.nc.Write(out); err != nil {
			return err
		}
		f, err := readFrame(br, hdr, ourMaxFrame)
		if err != nil {
			return err
		}
		if f.typ != frameSASL || f.body.code() != descSASLInit {
			return fmt.Errorf("sbtest: expected sasl-init, got descriptor %v", f.body.descriptor)
		}
		if _, err := c.nc.Write(appendFrame(nil, frameSASL, 0, described{uint64(descSASLOutcome), []any{uint8(0)}}, nil)); err != nil {
			return err
		}
		if _, err := io.ReadFull(br, hdr); err != nil {
			return err
		}
	}
	if !bytes.Equal(hdr, headerAMQP) {
		_, _ = c.nc.Write(headerAMQP)
		return fmt.Errorf("sbtest: unsupported protocol header %q", hdr)
	}
	if _, err := c.nc.Write(headerAMQP); err != nil {
		return err
	}
	f, err := readFrame(br, hdr, ourMaxFrame)
	if err != nil {
		return err
	}
	if f.body.code() != descOpen {
		return fmt.Errorf("sbtest: expected open, got descriptor %v", f.body.descriptor)
	}
	fields := f.body.fields()
	if n, ok := fieldUint32(fields, 2); ok && n >= 512 {
		c.peerMaxFrame = n
	} else if !ok {
		c.peerMaxFrame = 1 << 31
	}
	if ms, ok := fieldUint32(fields, 4); ok && ms > 0 {
		c.heartbeat = time.Duration(ms) * time.Millisecond / 2
	}
	open := described{uint64(descOpen), []any{"sbtest", nil, uint32(ourMaxFrame), uint16(65535), uint32(60000)}}
	_, err = c.nc.Write(appendFrame(nil, frameAMQP, 0, open, nil))
	return err
}

// writer writes queued frames, and an empty frame when the connection has
// been quiet for half the client's idle timeout.
func (c *conn) writer() {
	var hb <-chan time.Time
	if c.heartbeat > 0 {
		t := time.NewTicker(c.heartbeat)
		defer t.Stop()
		hb = t.C
	}
	var buf []byte
	wrote := false
	for {
		select {
		case <-c.done:
			return
		case <-c.wsig:
		case <-hb:
			if !wrote {
				c.write([]byte{0, 0, 0, 8, 2, 0, 0, 0})
			}
			wrote = false
			continue
		}
		c.wmu.Lock()
		buf, c.wbuf = c.wbuf, buf[:0]
		c.wmu.Unlock()
		if len(buf) == 0 {
			continue
		}
		wrote = true
		if _, err := c.nc.Write(buf); err != nil {
			c.wmu.Lock()
			c.wclosed = true
			c.wmu.Unlock()
			c.shutdown()
			return
		}
	}
}

// write queues bytes for the writer.
func (c *conn) write(b []byte) {
	c.wmu.Lock()
	if !c.wclosed {
		c.wbuf = append(c.wbuf, b...)
	}
	c.wmu.Unlock()
	c.signal()
}

// writeFrame queues one frame.
func (c *conn) writeFrame(channel uint16, p any, payload []byte) {
	c.wmu.Lock()
	if !c.wclosed {
		c.wbuf = appendFrame(c.wbuf, frameAMQP, channel, p, payload)
	}
	c.wmu.Unlock()
	c.signal()
}

func (c *conn) signal() {
	select {
	case c.wsig <- struct{}{}:
	default:
	}
}

// closeWith sends close with an error and flushes it.
func (c *conn) closeWith(e *amqpError) {
	c.wmu.Lock()
	out := appendFrame(c.wbuf, frameAMQP, 0, closeFrame(e), nil)
	c.wbuf = nil
	c.wclosed = true
	c.wmu.Unlock()
	_ = c.nc.SetWriteDeadline(time.Now().Add(time.Second))
	_, _ = c.nc.Write(out)
}

// handle dispatches one frame; it reports whether the connection ends.
func (c *conn) handle(f frame) bool {
	fields := f.body.fields()
	switch f.body.code() {
	case descBegin:
		c.begin(f.channel, fields)
	case descEnd:
		if s := c.sessions[f.channel]; s != nil {
			c.endSession(s)
			c.writeFrame(f.channel, endFrame(nil), nil)
		}
	case descClose:
		c.cleanupAll()
		c.wmu.Lock()
		out := appendFrame(c.wbuf, frameAMQP, 0, closeFrame(nil), nil)
		c.wbuf = nil
		c.wclosed = true
		c.wmu.Unlock()
		_, _ = c.nc.Write(out)
		return true
	case descAttach, descFlow, descTransfer, descDisposition, descDetach:
		s := c.sessions[f.channel]
		if s == nil {
			c.closeWith(&amqpError{Condition: "amqp:not-found", Description: fmt.Sprintf("no session on channel %d", f.channel)})
			return true
		}
		if err := s.handle(f); err != nil {
			c.closeWith(err)
			return true
		}
	default:
		c.closeWith(&amqpError{Condition: "amqp:not-implemented", Description: fmt.Sprintf("unexpected performative %v", f.body.descriptor)})
		return true
	}
	return false
}

func (c *conn) begin(channel uint16, fields []any) {
	next, _ := fieldUint32(fields, 1)
	s := &session{c: c, channel: channel, nextIncomingID: next, links: map[uint32]*link{}, unsettled: map[uint32]*outDelivery{}}
	c.sessions[channel] = s
	c.writeFrame(channel, described{uint64(descBegin), []any{channel, uint32(0), uint32(sessionWindow), uint32(sessionWindow), uint32(defaultHandleMx)}}, nil)
}

func (c *conn) endSession(s *session) {
	for _, l := range s.links {
		c.cleanupLink(l)
	}
	s.links = map[uint32]*link{}
	delete(c.sessions, s.channel)
}

func (c *conn) cleanupAll() {
	for _, s := range c.sessions {
		c.endSession(s)
	}
}
