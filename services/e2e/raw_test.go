package e2e

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// rawConn speaks the Kafka protocol by hand (encoding bodies with kmsg), so
// tests control every byte and see exact error codes.
type rawConn struct {
	t    testing.TB
	c    net.Conn
	corr int32
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawConn{t: t, c: c}
}

// frame writes one request frame with a raw api key and version.
func (r *rawConn) frame(key, version int16, flexible bool, body []byte) error {
	r.corr++
	var h []byte
	h = binary.BigEndian.AppendUint16(h, uint16(key))
	h = binary.BigEndian.AppendUint16(h, uint16(version))
	h = binary.BigEndian.AppendUint32(h, uint32(r.corr))
	h = binary.BigEndian.AppendUint16(h, 3)
	h = append(h, "e2e"...)
	if flexible {
		h = append(h, 0) // no tagged fields
	}
	msg := append(h, body...)
	return r.writeRaw(binary.BigEndian.AppendUint32(nil, uint32(len(msg))), msg)
}

func (r *rawConn) writeRaw(parts ...[]byte) error {
	_ = r.c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	for _, p := range parts {
		if _, err := r.c.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// send encodes req at its set version.
func (r *rawConn) send(req kmsg.Request) {
	r.t.Helper()
	if err := r.frame(req.Key(), req.GetVersion(), req.IsFlexible(), req.AppendTo(nil)); err != nil {
		r.t.Fatal(err)
	}
}

// recv reads one response into resp (whose version must be set).
func (r *rawConn) recv(resp kmsg.Response) error {
	_ = r.c.SetReadDeadline(time.Now().Add(20 * time.Second))
	var size [4]byte
	if _, err := io.ReadFull(r.c, size[:]); err != nil {
		return err
	}
	buf := make([]byte, binary.BigEndian.Uint32(size[:]))
	if _, err := io.ReadFull(r.c, buf); err != nil {
		return err
	}
	if corr := int32(binary.BigEndian.Uint32(buf)); corr != r.corr {
		return fmt.Errorf("correlation id %d, want %d", corr, r.corr)
	}
	buf = buf[4:]
	// ApiVersions responses always use header v0 (no tagged fields).
	if resp.IsFlexible() && resp.Key() != 18 {
		if len(buf) == 0 || buf[0] != 0 {
			return errors.New("unexpected response header tags")
		}
		buf = buf[1:]
	}
	return resp.ReadFrom(buf)
}

// roundTrip sends req and decodes its response.
func (r *rawConn) roundTrip(req kmsg.Request) kmsg.Response {
	r.t.Helper()
	r.send(req)
	resp := req.ResponseKind()
	resp.SetVersion(req.GetVersion())
	if err := r.recv(resp); err != nil {
		r.t.Fatalf("%s v%d: %v", kmsg.NameForKey(req.Key()), req.GetVersion(), err)
	}
	return resp
}

// expectClosed asserts the server closed the connection.
func (r *rawConn) expectClosed() {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	_, err := r.c.Read(b[:])
	var ne net.Error
	if err == nil || (errors.As(err, &ne) && ne.Timeout()) {
		r.t.Fatalf("connection still open (read err %v)", err)
	}
}
