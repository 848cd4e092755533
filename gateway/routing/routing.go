// Package routing keeps the gateway's gRPC connections to log-service
// nodes: one grpc.ClientConn per node address, created on first use and
// closed when no live node (in the metadata cache) has that address any
// more, so a gateway never accumulates connections to departed nodes. A
// node in the gateway's own process (the all-in-one) is reached through
// the in-process connection it was given instead (see shared/rpc/inproc).
package routing

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/rpc"
	"google.golang.org/grpc"
)

// ErrClosed is returned by Client after Close.
var ErrClosed = errors.New("routing: pool closed")

// Nodes is the part of meta.Cache the pool watches.
type Nodes interface {
	LogNodes() []meta.LogNode
	Changed() <-chan struct{}
}

// Pool hands out LogService clients by node address.
type Pool struct {
	nodes Nodes
	opts  []grpc.DialOption
	log   *slog.Logger
	local map[string]grpc.ClientConnInterface // in-process nodes by address

	mu      sync.Mutex
	conns   map[string]*grpc.ClientConn
	streams map[string]*ProduceStream
	closed  bool

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// New returns a pool that prunes connections as nodes leave. Nodes at an
// address in local are called through its connection, never dialed. extra
// dial options are appended to rpc.DialOptions (tracing interceptors, for
// example).
func New(nodes Nodes, log *slog.Logger, local map[string]grpc.ClientConnInterface, extra ...grpc.DialOption) *Pool {
	if log == nil {
		log = slog.Default()
	}
	p := &Pool{
		nodes: nodes, opts: rpc.DialOptions(extra...), log: log, local: local,
		conns: map[string]*grpc.ClientConn{}, streams: map[string]*ProduceStream{},
		stop: make(chan struct{}), done: make(chan struct{}),
	}
	go p.pruneLoop()
	return p
}

// Client returns a LogService client for the node at addr. The connection
// is created lazily: grpc.NewClient does not dial until the first call.
func (p *Pool) Client(addr string) (logv1.LogServiceClient, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.clientLocked(addr)
}

// Producer returns the produce stream to the node at addr.
func (p *Pool) Producer(addr string) (*ProduceStream, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if ps, ok := p.streams[addr]; ok {
		return ps, nil
	}
	cl, err := p.clientLocked(addr)
	if err != nil {
		return nil, err
	}
	ps := &ProduceStream{addr: addr, client: cl}
	p.streams[addr] = ps
	return ps, nil
}

func (p *Pool) clientLocked(addr string) (logv1.LogServiceClient, error) {
	if p.closed {
		return nil, ErrClosed
	}
	if lc, ok := p.local[addr]; ok {
		return logv1.NewLogServiceClient(lc), nil
	}
	cc, ok := p.conns[addr]
	if !ok {
		var err error
		cc, err = grpc.NewClient(addr, p.opts...)
		if err != nil {
			return nil, fmt.Errorf("routing: log service %s: %w", addr, err)
		}
		p.conns[addr] = cc
	}
	return logv1.NewLogServiceClient(cc), nil
}

// Len is the number of open connections.
func (p *Pool) Len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.conns)
}

// Close closes every connection. It is safe to call more than once.
func (p *Pool) Close() error {
	p.once.Do(func() {
		close(p.stop)
		<-p.done
		p.mu.Lock()
		p.closed = true
		for addr, cc := range p.conns {
			p.dropLocked(addr, cc)
		}
		p.mu.Unlock()
	})
	return nil
}

func (p *Pool) pruneLoop() {
	defer close(p.done)
	for {
		changed := p.nodes.Changed()
		p.prune()
		select {
		case <-changed:
		case <-p.stop:
			return
		}
	}
}

// prune closes connections to addresses no live node has. An RPC in flight
// on such a connection fails, which the caller answers with a retriable
// Kafka error: the node is gone anyway.
func (p *Pool) prune() {
	live := map[string]bool{}
	for _, n := range p.nodes.LogNodes() {
		live[n.Addr] = true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		if !live[addr] {
			p.log.Debug("closing connection to departed log-service node", "addr", addr)
			p.dropLocked(addr, cc)
		}
	}
}

// dropLocked closes a node's connection and its produce stream.
func (p *Pool) dropLocked(addr string, cc *grpc.ClientConn) {
	if ps, ok := p.streams[addr]; ok {
		ps.close()
		delete(p.streams, addr)
	}
	cc.Close()
	delete(p.conns, addr)
}
