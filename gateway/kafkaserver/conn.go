package kafkaserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// conn is one client connection. The reader (serve's goroutine) owns
// laneTail; the writer goroutine owns nothing but the socket's write side.
//
// Every request gets a slot, queued in pending in arrival order before its
// handler starts; the writer takes slots in that order and waits for each
// one's result, so responses leave in request order however the handlers
// interleave. pending's capacity is the in-flight bound: when it is full the
// reader blocks and stops reading the socket.
type conn struct {
	s   *Server
	nc  net.Conn
	log *slog.Logger

	ctx    context.Context // canceled on server close or when the connection fails
	remote string
	cancel context.CancelFunc

	pending  chan *slot
	laneTail chan struct{} // closed when the last Ordered request finished
	handlers sync.WaitGroup
}

type slot struct {
	corr int32
	done chan result // buffered: the handler never blocks on the writer
}

type result struct {
	resp kmsg.Response
	err  error
}

func newConn(s *Server, nc net.Conn) *conn {
	ctx, cancel := context.WithCancel(s.ctx)
	return &conn{
		s: s, nc: nc, ctx: ctx, cancel: cancel, remote: nc.RemoteAddr().String(),
		log:     s.log.With("remote", nc.RemoteAddr().String()),
		pending: make(chan *slot, s.cfg.MaxInFlight),
	}
}

func (c *conn) serve() {
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()
	c.readLoop()
	// No more requests. Requests already read still get their responses
	// (the client may be waiting for them) unless the connection failed;
	// the context is not canceled here because a produce with acks=0
	// followed by a close must still be written.
	close(c.pending)
	<-writerDone
	c.handlers.Wait()
	c.cancel()
	c.nc.Close()
}

func (c *conn) readLoop() {
	br := bufio.NewReaderSize(c.nc, 64<<10)
	for {
		req, err := ReadRequest(br, c.s.cfg.MaxRequestBytes, c.s.cfg.Handler.Versions)
		if req != nil {
			req.RemoteAddr = c.remote
		}
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && c.ctx.Err() == nil {
				c.log.Debug("closing kafka connection", "err", err)
			}
			return
		}
		sl := &slot{corr: req.CorrelationID, done: make(chan result, 1)}
		var wait, mine chan struct{}
		if c.s.cfg.Handler.Ordered(req.Key) {
			wait, mine = c.laneTail, make(chan struct{})
			c.laneTail = mine
		}
		select {
		case c.pending <- sl:
		case <-c.ctx.Done():
			if mine != nil {
				close(mine)
			}
			return
		}
		c.handlers.Add(1)
		go func() {
			defer c.handlers.Done()
			sl.done <- c.handle(req, wait, mine)
		}()
	}
}

// handle runs the handler, first waiting for the previous Ordered request
// if this one is Ordered too.
func (c *conn) handle(req *Request, wait <-chan struct{}, mine chan struct{}) (res result) {
	ctx := c.ctx
	if mine != nil {
		var once sync.Once
		release := func() { once.Do(func() { close(mine) }) }
		defer release()
		ctx = context.WithValue(ctx, releaseKey{}, release)
	}
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("kafka handler panic", "api", kmsg.NameForKey(req.Key), "version", req.Version, "panic", r, "stack", string(debug.Stack()))
			res = result{err: fmt.Errorf("handler panic: %v", r)}
		}
	}()
	if wait != nil {
		select {
		case <-wait:
		case <-c.ctx.Done():
			return result{err: c.ctx.Err()}
		}
	}
	resp, err := c.s.cfg.Handler.Handle(ctx, req)
	return result{resp: resp, err: err}
}

// writeLoop writes responses in request order. Responses that are ready
// together (a producer's pipelined requests acknowledged by one WAL group
// commit) go out in one write, up to coalesceBytes. After a failure it
// keeps draining slots without writing, so that the reader never blocks
// on a full pending queue of a dead connection.
func (c *conn) writeLoop() {
	w := responseWriter{c: c}
	var carry *slot // taken from pending, its result not ready yet
	for {
		sl := carry
		carry = nil
		if sl == nil {
			var ok bool
			if sl, ok = <-c.pending; !ok {
				return
			}
		}
		w.add(sl, <-sl.done)
		closed := false
	coalesce:
		for len(w.buf) > 0 && len(w.buf) < coalesceBytes {
			select {
			case next, ok := <-c.pending:
				if !ok {
					closed = true
					break coalesce
				}
				select {
				case res := <-next.done:
					w.add(next, res)
				default:
					carry = next
					break coalesce
				}
			default:
				break coalesce
			}
		}
		w.flush()
		if closed {
			return
		}
	}
}

// coalesceBytes bounds how much writeLoop gathers into one write: small
// responses share a system call, and a large fetch response is not copied
// to join others.
const coalesceBytes = 64 << 10

// responseWriter encodes responses into one buffer and writes it to the
// connection; after a failure it drops everything.
type responseWriter struct {
	c      *conn
	buf    []byte
	failed bool
}

func (w *responseWriter) add(sl *slot, res result) {
	switch {
	case w.failed:
	case res.err != nil:
		w.flush() // the responses before it still go out
		if w.c.ctx.Err() == nil {
			w.c.log.Warn("kafka request failed; closing connection", "err", res.err)
		}
		w.fail()
	case res.resp == nil: // acks=0 produce: nothing to send
	default:
		w.buf = AppendResponse(w.buf, sl.corr, res.resp)
	}
}

func (w *responseWriter) flush() {
	if len(w.buf) > 0 && !w.failed {
		if _, err := w.c.nc.Write(w.buf); err != nil {
			w.fail()
		}
	}
	w.buf = w.buf[:0]
	if cap(w.buf) > 1<<20 {
		w.buf = nil // do not pin one large fetch response per idle connection
	}
}

func (w *responseWriter) fail() {
	w.failed = true
	w.c.cancel()
	w.c.nc.Close() // unblocks the reader
}

type releaseKey struct{}

// ReleaseOrder lets the next Ordered request of the connection start. An
// Ordered handler calls it once the order-sensitive part of its work is
// done (for produce: the batches are handed, in order, to the log-service
// streams), so that waiting for durability overlaps with the next request.
// Returning from the handler releases too; calling it twice is harmless.
func ReleaseOrder(ctx context.Context) {
	if f, ok := ctx.Value(releaseKey{}).(func()); ok {
		f()
	}
}
