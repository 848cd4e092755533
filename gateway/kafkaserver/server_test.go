package kafkaserver_test

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/streamline-dev/streamline/gateway/internal/kafkatest"
	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// testHandler serves Produce 3-11 (ordered), Metadata 0-12 and ApiVersions
// 0-3 with behaviour supplied by each test.
type testHandler struct {
	handle func(ctx context.Context, req *kafkaserver.Request) (kmsg.Response, error)
}

func (testHandler) Versions(key int16) (int16, int16, bool) {
	switch key {
	case 0:
		return 3, 11, true
	case 3:
		return 0, 12, true
	case 18:
		return 0, 3, true
	}
	return 0, 0, false
}

func (testHandler) Ordered(key int16) bool { return key == 0 }

func (h testHandler) Handle(ctx context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
	return h.handle(ctx, req)
}

func start(t *testing.T, cfg kafkaserver.Config, h func(context.Context, *kafkaserver.Request) (kmsg.Response, error)) *kafkaserver.Server {
	t.Helper()
	cfg.Addr = "127.0.0.1:0"
	cfg.Handler = testHandler{handle: h}
	cfg.Logger = slog.New(slog.DiscardHandler)
	s, err := kafkaserver.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// echoMetadata answers Metadata with the correlation id as the cluster id,
// so a test can tell which request a response body belongs to.
func echoMetadata(req *kafkaserver.Request) kmsg.Response {
	resp := req.Body.ResponseKind().(*kmsg.MetadataResponse)
	resp.ClusterID = kmsg.StringPtr(strconv.Itoa(int(req.CorrelationID)))
	return resp
}

func metadataReq(version int16) *kmsg.MetadataRequest {
	r := kmsg.NewPtrMetadataRequest()
	r.Version = version
	return r
}

func TestPipelinedResponsesInRequestOrder(t *testing.T) {
	const n = 20
	var mu sync.Mutex
	var finished []int32
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		// Later requests finish first.
		time.Sleep(time.Duration(n-req.CorrelationID) * 5 * time.Millisecond)
		mu.Lock()
		finished = append(finished, req.CorrelationID)
		mu.Unlock()
		return echoMetadata(req), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	var reqs []kmsg.Request
	for i := range n {
		reqs = append(reqs, metadataReq(int16(i%13))) // mix flexible and non-flexible versions
	}
	ids := c.Send(reqs...)
	for i, req := range reqs {
		corr, resp := c.Read(req)
		if corr != ids[i] {
			t.Fatalf("response %d has correlation id %d, want %d", i, corr, ids[i])
		}
		if req.GetVersion() >= 2 {
			if got := *resp.(*kmsg.MetadataResponse).ClusterID; got != strconv.Itoa(int(ids[i])) {
				t.Fatalf("response %d carries the body of request %s", i, got)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if finished[0] == 1 {
		t.Fatalf("handlers finished in request order %v; the test did not exercise reordering", finished)
	}
}

// countingListener counts the writes to the connections it accepts.
type countingListener struct {
	net.Listener
	writes *atomic.Int64
}

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return countingConn{c, l.writes}, nil
}

type countingConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countingConn) Write(b []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(b)
}

// Responses that are ready together leave in one write, in order: here
// every later request is answered while the first still runs. A round on
// a loaded machine may see a later result reach its slot only after the
// first is written, so the test passes once any of a few rounds shares a
// write; without coalescing every round takes one write per response.
func TestReadyResponsesShareWrites(t *testing.T) {
	const n, rounds = 10, 5
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var writes atomic.Int64
	laterDone := make(chan struct{}, n*rounds)
	s := start(t, kafkaserver.Config{Listener: countingListener{ln, &writes}}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		if req.CorrelationID%n == 1 { // the first of a round
			for range n - 1 {
				<-laterDone
			}
			// The others' results are sent to their slots right after
			// their handlers return; give that a moment.
			time.Sleep(20 * time.Millisecond)
		} else {
			laterDone <- struct{}{}
		}
		return echoMetadata(req), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	var got []int64
	for range rounds {
		before := writes.Load()
		var reqs []kmsg.Request
		for range n {
			reqs = append(reqs, metadataReq(12))
		}
		ids := c.Send(reqs...)
		for i, req := range reqs {
			corr, resp := c.Read(req)
			if corr != ids[i] || *resp.(*kmsg.MetadataResponse).ClusterID != strconv.Itoa(int(ids[i])) {
				t.Fatalf("response %d: correlation id %d, body of %s; want %d", i, corr, *resp.(*kmsg.MetadataResponse).ClusterID, ids[i])
			}
		}
		got = append(got, writes.Load()-before)
		if got[len(got)-1] < n {
			return
		}
	}
	t.Fatalf("%d responses ready together took %v writes in %d rounds", n, got, rounds)
}

func TestAcksZeroProduceSendsNothingAndKeepsOrder(t *testing.T) {
	var produced atomic.Int32
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		if p, ok := req.Body.(*kmsg.ProduceRequest); ok {
			produced.Add(1)
			if p.Acks == 0 {
				return nil, nil
			}
			return p.ResponseKind(), nil
		}
		return echoMetadata(req), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	p0 := kmsg.NewPtrProduceRequest()
	p0.Version, p0.Acks = 7, 0
	p1 := kmsg.NewPtrProduceRequest()
	p1.Version, p1.Acks = 9, 1
	md := metadataReq(12)
	ids := c.Send(p0, md, p1)
	if corr, _ := c.Read(md); corr != ids[1] {
		t.Fatalf("first response has correlation id %d, want the metadata's %d", corr, ids[1])
	}
	if corr, _ := c.Read(p1); corr != ids[2] {
		t.Fatalf("second response has correlation id %d, want the acks=1 produce's %d", corr, ids[2])
	}
	if got := produced.Load(); got != 2 {
		t.Fatalf("handler saw %d produces, want 2 (acks=0 must still be processed)", got)
	}
}

func TestOrderedRequestsRunOneAtATime(t *testing.T) {
	var running, overlaps atomic.Int32
	var mu sync.Mutex
	var order []int32
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		if req.Key != 0 {
			return echoMetadata(req), nil
		}
		if running.Add(1) > 1 {
			overlaps.Add(1)
		}
		// The first produce is the slowest: if produces ran concurrently
		// the others would overtake it.
		time.Sleep(time.Duration(6-req.CorrelationID) * 10 * time.Millisecond)
		mu.Lock()
		order = append(order, req.CorrelationID)
		mu.Unlock()
		running.Add(-1)
		return req.Body.ResponseKind(), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	var reqs []kmsg.Request
	for range 5 {
		p := kmsg.NewPtrProduceRequest()
		p.Version, p.Acks = 11, -1
		reqs = append(reqs, p)
	}
	c.Send(reqs...)
	for _, r := range reqs {
		c.Read(r)
	}
	if overlaps.Load() != 0 {
		t.Fatal("ordered requests ran concurrently")
	}
	for i, corr := range order {
		if corr != int32(i+1) {
			t.Fatalf("ordered requests handled in order %v", order)
		}
	}
}

func TestOversizeFrameClosesConnection(t *testing.T) {
	s := start(t, kafkaserver.Config{MaxRequestBytes: 1024}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		return echoMetadata(req), nil
	})
	for _, size := range []int32{1025, -1, 1 << 30} {
		c := kafkatest.Dial(t, s.Addr().String())
		c.WriteRaw(binary.BigEndian.AppendUint32(nil, uint32(size)))
		c.ExpectClosed()
	}
	// A frame at the limit is fine.
	c := kafkatest.Dial(t, s.Addr().String())
	md := metadataReq(1)
	md.Topics = []kmsg.MetadataRequestTopic{{Topic: kmsg.StringPtr(string(make([]byte, 900)))}}
	c.RoundTrip(md)
}

func TestGarbageClosesOnlyThatConnection(t *testing.T) {
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		return echoMetadata(req), nil
	})
	good := kafkatest.Dial(t, s.Addr().String())
	good.RoundTrip(metadataReq(12))

	bad := kafkatest.Dial(t, s.Addr().String())
	// A Metadata v12 header followed by a body that is not a Metadata request.
	frame := kafkatest.Encode(metadataReq(12), 1)
	frame = append(frame[:len(frame)-3], 0xff, 0xff, 0xff, 0xff, 0xff)
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-4))
	bad.WriteRaw(frame)
	bad.ExpectClosed()

	short := kafkatest.Dial(t, s.Addr().String())
	short.WriteRaw([]byte{0, 0, 0, 3, 1, 2, 3})
	short.ExpectClosed()

	good.RoundTrip(metadataReq(9))
}

func TestUnknownAPIKeyClosesConnection(t *testing.T) {
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		return echoMetadata(req), nil
	})
	// Key 9999 is unknown to Kafka; key 9 (OffsetFetch) is known but not served.
	for _, key := range []int16{9999, 9} {
		c := kafkatest.Dial(t, s.Addr().String())
		frame := kafkatest.Encode(metadataReq(1), 1)
		binary.BigEndian.PutUint16(frame[4:], uint16(key))
		c.WriteRaw(frame)
		c.ExpectClosed()
	}
}

func TestUnsupportedVersionClosesConnection(t *testing.T) {
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		return echoMetadata(req), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	c.Send(metadataReq(13)) // served up to 12
	c.ExpectClosed()

	p := kmsg.NewPtrProduceRequest()
	p.Version = 2 // served from 3
	c = kafkatest.Dial(t, s.Addr().String())
	c.Send(p)
	c.ExpectClosed()
}

func TestUnsupportedApiVersionsReachesHandler(t *testing.T) {
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		if req.Version != 4 {
			return nil, errors.New("want the unsupported version passed through")
		}
		resp := req.Body.ResponseKind().(*kmsg.ApiVersionsResponse)
		resp.Version, resp.ErrorCode = 0, 35
		return resp, nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	req := kmsg.NewPtrApiVersionsRequest()
	req.Version = 4 // flexible: the server must still answer with header v0
	id := c.Send(req)[0]
	corr, resp := c.ReadAs(req, 0)
	if corr != id || resp.(*kmsg.ApiVersionsResponse).ErrorCode != 35 {
		t.Fatalf("got corr %d error %d, want corr %d error 35", corr, resp.(*kmsg.ApiVersionsResponse).ErrorCode, id)
	}
}

func TestHandlerErrorClosesAfterEarlierResponses(t *testing.T) {
	s := start(t, kafkaserver.Config{}, func(_ context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		if req.CorrelationID == 2 {
			return nil, errors.New("boom")
		}
		if req.CorrelationID == 3 {
			panic("handler bug")
		}
		return echoMetadata(req), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	md := metadataReq(12)
	c.Send(md, md)
	if corr, _ := c.Read(md); corr != 1 {
		t.Fatalf("got correlation id %d, want 1", corr)
	}
	c.ExpectClosed()

	// A panicking handler costs its connection, not the server.
	c = kafkatest.Dial(t, s.Addr().String())
	c.Send(md, md, md)
	c.Read(md)
	c.ExpectClosed()
	kafkatest.Dial(t, s.Addr().String()).RoundTrip(md)
}

func TestCloseCancelsInFlightAndIsIdempotent(t *testing.T) {
	entered := make(chan struct{})
	s := start(t, kafkaserver.Config{}, func(ctx context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		close(entered)
		<-ctx.Done()
		return nil, ctx.Err()
	})
	c := kafkatest.Dial(t, s.Addr().String())
	c.Send(metadataReq(1))
	<-entered
	done := make(chan struct{})
	go func() {
		s.Close()
		s.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a handler was blocked on its context")
	}
	c.ExpectClosed()
}

// TestReleaseOrderLetsNextOrderedRequestStart checks that an Ordered
// handler that calls ReleaseOrder lets the connection's next Ordered
// request start before it returns (produce awaits durability after
// submitting), while responses still leave in request order.
func TestReleaseOrderLetsNextOrderedRequestStart(t *testing.T) {
	secondStarted := make(chan struct{})
	s := start(t, kafkaserver.Config{}, func(ctx context.Context, req *kafkaserver.Request) (kmsg.Response, error) {
		if req.Key != 0 {
			return echoMetadata(req), nil
		}
		if req.CorrelationID == 1 {
			kafkaserver.ReleaseOrder(ctx)
			select {
			case <-secondStarted:
			case <-time.After(10 * time.Second):
				return nil, errors.New("second produce never started while the first was awaiting")
			}
		} else {
			close(secondStarted)
		}
		return req.Body.ResponseKind(), nil
	})
	c := kafkatest.Dial(t, s.Addr().String())
	var reqs []kmsg.Request
	for range 2 {
		p := kmsg.NewPtrProduceRequest()
		p.Version, p.Acks = 11, -1
		reqs = append(reqs, p)
	}
	ids := c.Send(reqs...)
	for i, r := range reqs {
		if corr, _ := c.Read(r); corr != ids[i] {
			t.Fatalf("response %d has correlation id %d, want %d", i, corr, ids[i])
		}
	}
}
