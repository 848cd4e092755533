// Package kafkaserver is the Kafka wire-protocol front end of a gateway: a
// TCP accept loop and, per connection, a reader that decodes size-prefixed
// requests and a writer that sends responses. It knows nothing about what
// the requests mean; a Handler answers them.
//
// Requests on one connection are pipelined: each is handled in its own
// goroutine as soon as it is read (at most MaxInFlight per connection; the
// reader stops reading when that many are unanswered, which is the
// backpressure a client sees), and responses are written strictly in request
// order, as the protocol requires. Requests whose keys the Handler marks as
// Ordered (produce) are additionally handled one after another, in arrival
// order, because Kafka guarantees that records sent on one connection are
// appended in order and a broker handling two produces concurrently could
// append them the other way round.
//
// A frame that is too large or undecodable, an unknown API key, or an
// unsupported version of any API other than ApiVersions closes the
// connection, as Kafka does. A nil response from the Handler (produce with
// acks=0) sends nothing and keeps later responses in order.
package kafkaserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// Handler answers decoded requests.
type Handler interface {
	// Versions reports the version range served for key; ok is false for
	// keys that are not served (the connection is then closed).
	Versions(key int16) (min, max int16, ok bool)
	// Ordered reports whether requests of key must be handled one at a
	// time per connection, in arrival order.
	Ordered(key int16) bool
	// Handle answers one request. A nil response with a nil error means
	// no response is sent (produce with acks=0). An error closes the
	// connection after the responses to earlier requests are written.
	Handle(ctx context.Context, req *Request) (kmsg.Response, error)
}

// DefaultMaxInFlight bounds the unanswered requests per connection.
const DefaultMaxInFlight = 64

// Config configures a Server.
type Config struct {
	// Addr is the TCP address to listen on, e.g. ":9092" or "127.0.0.1:0".
	Addr string
	// Listener, if set, is used instead of listening on Addr (a caller
	// that must know the bound port before building its Handler).
	Listener net.Listener
	Handler  Handler
	// MaxRequestBytes bounds one request frame (Kafka's
	// socket.request.max.bytes); 0 means DefaultMaxRequestBytes.
	MaxRequestBytes int32
	// MaxInFlight bounds unanswered requests per connection; 0 means
	// DefaultMaxInFlight.
	MaxInFlight int
	Logger      *slog.Logger
}

// Server is a Kafka protocol TCP server.
type Server struct {
	cfg Config
	log *slog.Logger

	ctx    context.Context // canceled by Close; parent of every request's context
	cancel context.CancelFunc

	mu     sync.Mutex
	ln     net.Listener
	conns  map[*conn]struct{}
	closed bool

	wg        sync.WaitGroup // accept loop and connection goroutines
	closeOnce sync.Once
}

// New validates cfg and returns a server that is not listening yet.
func New(cfg Config) (*Server, error) {
	if cfg.Handler == nil {
		return nil, errors.New("kafkaserver: Handler is required")
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if cfg.MaxRequestBytes < 0 {
		return nil, fmt.Errorf("kafkaserver: MaxRequestBytes %d must be positive", cfg.MaxRequestBytes)
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{cfg: cfg, log: cfg.Logger, ctx: ctx, cancel: cancel, conns: map[*conn]struct{}{}}, nil
}

// Start listens on cfg.Addr (or uses cfg.Listener) and serves connections
// in the background.
func (s *Server) Start() error {
	ln := s.cfg.Listener
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", s.cfg.Addr); err != nil {
			return fmt.Errorf("kafkaserver: listen %s: %w", s.cfg.Addr, err)
		}
	}
	s.mu.Lock()
	if s.closed || s.ln != nil {
		s.mu.Unlock()
		ln.Close()
		return errors.New("kafkaserver: already started or closed")
	}
	s.ln = ln
	s.wg.Add(1)
	s.mu.Unlock()
	go s.acceptLoop(ln)
	return nil
}

// Addr is the address the server listens on (nil before Start).
func (s *Server) Addr() net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		return nil
	}
	return s.ln.Addr()
}

// Close stops accepting, closes every connection, cancels in-flight
// requests and waits for all goroutines. It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		if s.ln != nil {
			s.ln.Close()
		}
		for c := range s.conns {
			c.nc.Close()
		}
		s.mu.Unlock()
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

func (s *Server) acceptLoop(ln net.Listener) {
	defer s.wg.Done()
	for {
		nc, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				s.log.Error("kafka accept failed; no longer accepting", "err", err)
			}
			return
		}
		c := newConn(s, nc)
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go func() {
			defer s.wg.Done()
			c.serve()
			s.mu.Lock()
			delete(s.conns, c)
			s.mu.Unlock()
		}()
	}
}
