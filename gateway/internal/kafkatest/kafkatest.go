// Package kafkatest is a bare Kafka wire client for tests: it sends each
// request at exactly the version set on it (no negotiation, unlike kgo),
// can pipeline several requests in one write, and can tell when the server
// closed the connection. It is test support, not a Kafka client.
package kafkatest

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Conn is one raw connection.
type Conn struct {
	t    testing.TB
	nc   net.Conn
	br   *bufio.Reader
	corr int32
}

// Dial connects to addr; the connection is closed when the test ends.
func Dial(t testing.TB, addr string) *Conn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &Conn{t: t, nc: nc, br: bufio.NewReader(nc)}
}

// Encode returns req framed with correlation id corr and client id "test".
func Encode(req kmsg.Request, corr int32) []byte {
	// AppendRequest writes the size at dst[0:4], so it needs a fresh slice.
	return kmsg.NewRequestFormatter(kmsg.FormatterClientID("test")).AppendRequest(nil, req, corr)
}

// Send writes requests in one write and returns their correlation ids.
func (c *Conn) Send(reqs ...kmsg.Request) []int32 {
	c.t.Helper()
	var buf []byte
	var ids []int32
	for _, r := range reqs {
		c.corr++
		ids = append(ids, c.corr)
		buf = append(buf, Encode(r, c.corr)...)
	}
	c.WriteRaw(buf)
	return ids
}

// WriteRaw writes bytes as they are.
func (c *Conn) WriteRaw(b []byte) {
	c.t.Helper()
	c.nc.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.nc.Write(b); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Read reads one response to req, decoded at req's version, and returns
// its correlation id.
func (c *Conn) Read(req kmsg.Request) (int32, kmsg.Response) {
	c.t.Helper()
	return c.ReadAs(req, req.GetVersion())
}

// ReadAs reads one response to req decoded at version (an unsupported
// ApiVersions is answered at v0).
func (c *Conn) ReadAs(req kmsg.Request, version int16) (int32, kmsg.Response) {
	c.t.Helper()
	frame, err := c.readFrame(10 * time.Second)
	if err != nil {
		c.t.Fatalf("read response to %s: %v", kmsg.NameForKey(req.Key()), err)
	}
	resp := req.ResponseKind()
	resp.SetVersion(version)
	corr := int32(binary.BigEndian.Uint32(frame))
	body := frame[4:]
	if resp.IsFlexible() && resp.Key() != 18 {
		body = body[1:] // empty tagged fields of header v1
	}
	if err := resp.ReadFrom(body); err != nil {
		c.t.Fatalf("decode %s v%d response: %v", kmsg.NameForKey(req.Key()), resp.GetVersion(), err)
	}
	return corr, resp
}

// RoundTrip sends req and reads its response, checking the correlation id.
func (c *Conn) RoundTrip(req kmsg.Request) kmsg.Response {
	c.t.Helper()
	id := c.Send(req)[0]
	corr, resp := c.Read(req)
	if corr != id {
		c.t.Fatalf("correlation id %d, want %d", corr, id)
	}
	return resp
}

// ExpectClosed fails the test unless the server closes the connection
// (without sending anything more) within a few seconds.
func (c *Conn) ExpectClosed() {
	c.t.Helper()
	frame, err := c.readFrame(5 * time.Second)
	switch {
	case err == nil:
		c.t.Fatalf("expected the connection to be closed, got a %d-byte response", len(frame))
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
	case errors.Is(err, net.ErrClosed):
	default:
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			c.t.Fatal("connection still open after 5s; expected the server to close it")
		}
		// ECONNRESET and similar also mean closed.
	}
}

func (c *Conn) readFrame(timeout time.Duration) ([]byte, error) {
	c.nc.SetReadDeadline(time.Now().Add(timeout))
	var size [4]byte
	if _, err := io.ReadFull(c.br, size[:]); err != nil {
		return nil, err
	}
	frame := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(c.br, frame); err != nil {
		return nil, err
	}
	return frame, nil
}
