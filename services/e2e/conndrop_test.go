package e2e

import (
	"context"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// cuttingProxy forwards TCP connections to a target and can cut every open
// connection at once: fault injection in front of the real gateway.
type cuttingProxy struct {
	l      net.Listener
	target string
	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	cuts   int
}

func startCuttingProxy(t *testing.T, l net.Listener, target string) *cuttingProxy {
	p := &cuttingProxy{l: l, target: target, conns: map[net.Conn]struct{}{}}
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	t.Cleanup(func() { l.Close(); p.cut() })
	return p
}

func (p *cuttingProxy) serve(c net.Conn) {
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	go func() { io.Copy(up, c); up.Close() }()
	io.Copy(c, up)
	c.Close()
}

// cut closes every open connection, in both directions.
func (p *cuttingProxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for c := range p.conns {
		c.Close()
	}
	p.conns = map[net.Conn]struct{}{}
	p.cuts++
}

// TestIdempotentProducerSurvivesConnectionCuts produces through a proxy
// that cuts every client connection every 150 ms, as long as a record was
// acknowledged since the last cut. Retried batches reach the log service
// again; its idempotent-producer state answers them with their original
// offsets, so the consumed stream has no duplicate and no gap — for a
// local and a diskless topic.
//
// The cuts wait for progress because a diskless produce lasts a flush: on
// a loaded machine that can exceed 150 ms, and a cut on a clock alone
// then cuts nearly every answer before it arrives (CI saw 1,421 cuts and
// 213 s for 3,000 records). Kafka would stall the same way; what the test
// is about is that the retries of cut requests are answered exactly once.
func TestIdempotentProducerSurvivesConnectionCuts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := cluster.StartAllInOne(t, cluster.WithAdvertisedAddr(l.Addr().String()))
	proxy := startCuttingProxy(t, l, s.KafkaListenAddr())
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, mode := range []string{"local", "diskless"} {
		t.Run(mode, func(t *testing.T) {
			topic := "cuts-" + mode
			adm := kadm.NewClient(newClient(t, l.Addr().String()))
			resp, err := adm.CreateTopic(ctx, 1, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic)
			if err != nil || resp.Err != nil {
				t.Fatalf("create: %v %v", err, resp.Err)
			}
			prod := newClient(t, l.Addr().String(), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(time.Millisecond))
			stop := make(chan struct{})
			var acked atomic.Int64
			go func() {
				tick := time.NewTicker(150 * time.Millisecond)
				defer tick.Stop()
				ackedAtCut := int64(0)
				for {
					select {
					case <-stop:
						return
					case <-tick.C:
						if a := acked.Load(); a > ackedAtCut {
							proxy.cut()
							ackedAtCut = a
						}
					}
				}
			}()
			const n = 3000
			var wg sync.WaitGroup
			var mu sync.Mutex
			failed := 0
			for i := 0; i < n; i++ {
				wg.Add(1)
				prod.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, func(_ *kgo.Record, err error) {
					defer wg.Done()
					if err != nil {
						mu.Lock()
						failed++
						mu.Unlock()
						return
					}
					acked.Add(1)
				})
				if i%10 == 0 {
					time.Sleep(10 * time.Millisecond) // ~3 s of load: several cuts
				}
			}
			wg.Wait()
			close(stop)
			if failed != 0 {
				t.Fatalf("%d records failed", failed)
			}
			proxy.mu.Lock()
			cuts := proxy.cuts
			proxy.cuts = 0
			proxy.mu.Unlock()
			t.Logf("%d connection cuts during the load", cuts)
			if cuts < 3 {
				t.Fatalf("only %d cuts: the load ended before the faults", cuts)
			}
			cons := newClient(t, l.Addr().String(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
			next := 0
			for next < n {
				fs := cons.PollFetches(ctx)
				if ctx.Err() != nil {
					t.Fatalf("read %d of %d", next, n)
				}
				fs.EachRecord(func(r *kgo.Record) {
					if string(r.Value) != strconv.Itoa(next) || r.Offset != int64(next) {
						t.Fatalf("at offset %d got %q, want %d (a duplicate or a gap)", r.Offset, r.Value, next)
					}
					next++
				})
			}
			// Nothing beyond the n records: no duplicate at the end either.
			end, err := adm.ListEndOffsets(ctx, topic)
			if err != nil {
				t.Fatal(err)
			}
			if o, _ := end.Lookup(topic, 0); o.Offset != n {
				t.Fatalf("log end %d, want %d", o.Offset, n)
			}
		})
	}
}
