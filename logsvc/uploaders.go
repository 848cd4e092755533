package logsvc

import (
	"sync"
	"sync/atomic"

	"google.golang.org/grpc"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/rpc"
)

// uploaderPool keeps gRPC connections to the live uploaders with an object
// store and hands out their clients, starting at a different one each call
// so that flushes spread over the fleet. An uploader in the node's own
// process (the all-in-one) is called through its in-process connection.
type uploaderPool struct {
	cache *meta.Cache
	opts  []grpc.DialOption
	local map[string]grpc.ClientConnInterface // in-process uploaders by address
	next  atomic.Uint64

	mu    sync.Mutex
	conns map[string]*grpc.ClientConn
}

// newUploaderPool dials with rpc.DialOptions plus extra (tracing), except
// the uploaders in local.
func newUploaderPool(cache *meta.Cache, local map[string]grpc.ClientConnInterface, extra ...grpc.DialOption) *uploaderPool {
	return &uploaderPool{cache: cache, local: local, opts: rpc.DialOptions(extra...), conns: map[string]*grpc.ClientConn{}}
}

// clients returns a client per live uploader, rotated.
func (p *uploaderPool) clients() []uploadv1.UploadServiceClient {
	var live []meta.Uploader
	for _, u := range p.cache.Uploaders() {
		if u.ObjectStore {
			live = append(live, u)
		}
	}
	if len(live) == 0 {
		return nil
	}
	start := int(p.next.Add(1) % uint64(len(live)))
	out := make([]uploadv1.UploadServiceClient, 0, len(live))
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range live {
		u := live[(start+i)%len(live)]
		if lc, ok := p.local[u.Addr]; ok {
			out = append(out, uploadv1.NewUploadServiceClient(lc))
			continue
		}
		cc, ok := p.conns[u.Addr]
		if !ok {
			var err error
			if cc, err = grpc.NewClient(u.Addr, p.opts...); err != nil {
				continue
			}
			p.conns[u.Addr] = cc
		}
		out = append(out, uploadv1.NewUploadServiceClient(cc))
	}
	return out
}

func (p *uploaderPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for addr, cc := range p.conns {
		cc.Close()
		delete(p.conns, addr)
	}
}
