package objstoretest

import (
	"context"
	"fmt"
	"io"
	"log"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Fault is what FaultProxy does to a request instead of plainly forwarding it.
type Fault int

const (
	// SlowDown answers 503 with S3's SlowDown XML error, without forwarding:
	// what S3 says when a prefix gets more requests than it can take.
	SlowDown Fault = iota + 1
	// DropRequest resets the connection without forwarding or answering,
	// like a load balancer or server crashing before it got the request.
	DropRequest
	// DropResponse forwards the request, then resets the connection instead
	// of answering: the server did the work but the client cannot know, the
	// case that makes retried writes need to be idempotent.
	DropResponse
	// CutResponse forwards the request and relays the status, the headers
	// and half the body, then resets: a download lost midway, after the
	// client library has already handed the body to the caller.
	CutResponse
	// Hang holds the request unanswered until the client gives up (its
	// per-attempt timeout), like a server that stopped responding.
	Hang
	numFaults
)

func (f Fault) String() string {
	switch f {
	case SlowDown:
		return "SlowDown"
	case DropRequest:
		return "DropRequest"
	case DropResponse:
		return "DropResponse"
	case CutResponse:
		return "CutResponse"
	case Hang:
		return "Hang"
	}
	return fmt.Sprintf("Fault(%d)", int(f))
}

// rule says when one kind of fault fires; the first that applies wins.
type rule struct {
	next  int       // the next n requests
	until time.Time // every request before this
	rate  float64   // each request with this probability
}

// FaultProxy is a reverse proxy (an http.Handler) in front of a real S3
// server that injects latency and faults, reconfigurable while requests flow.
// It keeps the client's Host header, which SigV4 signs, so the server accepts
// the forwarded requests. All methods are safe for concurrent use.
type FaultProxy struct {
	target  *url.URL
	rp      *httputil.ReverseProxy
	tr      *http.Transport
	closing chan struct{}
	once    sync.Once

	mu       sync.Mutex
	latency  Latency
	rules    [numFaults]rule
	injected [numFaults]int64
	requests int64
	byMethod map[string]int64
}

// NewFaultProxy returns a FaultProxy forwarding to target (http://host:port).
func NewFaultProxy(target string) (*FaultProxy, error) {
	u, err := url.Parse(target)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("objstoretest: bad proxy target %q: %v", target, err)
	}
	p := &FaultProxy{target: u, closing: make(chan struct{})}
	p.tr = http.DefaultTransport.(*http.Transport).Clone()
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.Out.Host = r.In.Host // SigV4 signed the client's Host
		},
		Transport: p.tr,
		// Aborted client requests are the point of this proxy, not news.
		ErrorLog: log.New(io.Discard, "", 0),
	}
	return p, nil
}

// StartFaultProxy serves a new FaultProxy for target on a loopback port until
// the test ends, and returns it with its endpoint (http://127.0.0.1:port).
func StartFaultProxy(t testing.TB, target string) (*FaultProxy, string) {
	t.Helper()
	p, err := NewFaultProxy(target)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(p)
	t.Cleanup(func() {
		p.Close() // releases hung requests, which srv.Close waits for
		srv.Close()
	})
	return p, srv.URL
}

// Close releases requests held by Hang and closes idle upstream connections.
func (p *FaultProxy) Close() {
	p.once.Do(func() { close(p.closing) })
	p.tr.CloseIdleConnections()
}

// SetLatency delays every forwarded or faulted request by l (nil: none).
func (p *FaultProxy) SetLatency(l Latency) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.latency = l
}

// InjectNext makes the next n requests fail with f.
func (p *FaultProxy) InjectNext(f Fault, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules[f].next = n
}

// InjectFor makes every request fail with f for the next d.
func (p *FaultProxy) InjectFor(f Fault, d time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules[f].until = time.Now().Add(d)
}

// InjectRate makes each request fail with f with probability rate (0..1).
func (p *FaultProxy) InjectRate(f Fault, rate float64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules[f].rate = rate
}

// Reset removes every fault and the latency; counters are kept.
func (p *FaultProxy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = [numFaults]rule{}
	p.latency = nil
}

// Requests is how many requests reached the proxy.
func (p *FaultProxy) Requests() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// RequestsOf is how many requests of one HTTP method (PUT: object writes
// and multipart parts) it has seen.
func (p *FaultProxy) RequestsOf(method string) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.byMethod[method]
}

// Injected is how many requests got fault f.
func (p *FaultProxy) Injected(f Fault) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.injected[f]
}

// pick counts the request and chooses its fault (0: none) and delay, and
// returns the latency model's Transfer if it has one.
func (p *FaultProxy) pick(r *http.Request) (Fault, time.Duration, Transfer) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	if p.byMethod == nil {
		p.byMethod = map[string]int64{}
	}
	p.byMethod[r.Method]++
	var delay time.Duration
	if p.latency != nil {
		delay = p.latency.Delay(r)
	}
	tr, _ := p.latency.(Transfer)
	now := time.Now()
	for f := SlowDown; f < numFaults; f++ {
		ru := &p.rules[f]
		hit := ru.next > 0 || now.Before(ru.until) || (ru.rate > 0 && rand.Float64() < ru.rate)
		if hit {
			if ru.next > 0 {
				ru.next--
			}
			p.injected[f]++
			return f, delay, tr
		}
	}
	return 0, delay, tr
}

// ServeHTTP implements http.Handler.
func (p *FaultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	arrived := time.Now()
	fault, delay, transfer := p.pick(r)
	if fault == 0 {
		// A forwarded request's delay is its time to first byte, measured
		// from its arrival here: the real server (gofakes3 in the
		// benchmarks) handles it meanwhile, and its answer is held until
		// the delay has passed. Its own time is part of the modeled
		// latency, not added to it, so a busy test machine does not
		// stretch the model (a server slower than the delay answers as
		// soon as it is done).
		p.rp.ServeHTTP(&heldResponse{ResponseWriter: w, until: arrived.Add(delay), ctx: r.Context(), req: r, transfer: transfer}, r)
		return
	}
	if delay > 0 {
		t := time.NewTimer(delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch fault {
	case SlowDown:
		writeSlowDown(w, r)
	case DropRequest:
		reset(w)
	case DropResponse:
		p.forwardAndDrop(w, r, false)
	case CutResponse:
		p.forwardAndDrop(w, r, true)
	case Hang:
		select {
		case <-r.Context().Done():
		case <-p.closing:
		}
	}
}

// heldResponse holds a response's status line until a time (or until the
// request is abandoned): FaultProxy's time to first byte, plus the time
// its body takes at the model's throughput (Transfer), which the status
// line is held for too, as the proxy relays the body in one piece.
type heldResponse struct {
	http.ResponseWriter
	until    time.Time
	ctx      context.Context
	req      *http.Request
	transfer Transfer // nil: bodies cost nothing
	held     bool     // the wait is over
}

func (h *heldResponse) wait() {
	if h.held {
		return
	}
	h.held = true
	if d := time.Until(h.until); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-h.ctx.Done():
		}
	}
}

// WriteHeader implements http.ResponseWriter.
func (h *heldResponse) WriteHeader(code int) {
	if h.transfer != nil && !h.held {
		if n, err := strconv.ParseInt(h.Header().Get("Content-Length"), 10, 64); err == nil {
			h.until = h.until.Add(h.transfer.TransferTime(h.req, n))
		}
	}
	h.wait()
	h.ResponseWriter.WriteHeader(code)
}

// Write implements http.ResponseWriter.
func (h *heldResponse) Write(b []byte) (int, error) {
	h.wait()
	return h.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController (which the reverse proxy flushes
// through) reach the server's writer.
func (h *heldResponse) Unwrap() http.ResponseWriter { return h.ResponseWriter }

// writeSlowDown answers as S3 does when throttling, so clients see the real
// error code (the SDK retries SlowDown as a throttle, with longer backoff).
func writeSlowDown(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/xml")
	h.Set("x-amz-request-id", "faultproxy")
	h.Set("Connection", "close") // the request body was not read
	w.WriteHeader(http.StatusServiceUnavailable)
	if r.Method != http.MethodHead {
		io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
			`<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message>`+
			`<RequestId>faultproxy</RequestId><HostId>faultproxy</HostId></Error>`)
	}
}

// reset closes the client's connection abruptly (RST, not FIN), as a crashed
// peer or middlebox would.
func reset(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler) // not hijackable (HTTP/2): abort the stream
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
}

// forwardAndDrop sends the request upstream and waits for the answer, so
// the server has done the work, then resets the client's connection; with
// half, after relaying the status, headers and half the body.
func (p *FaultProxy) forwardAndDrop(w http.ResponseWriter, r *http.Request, half bool) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host = p.target.Scheme, p.target.Host
	resp, err := p.tr.RoundTrip(out)
	if err != nil {
		reset(w)
		return
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if half {
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		w.Write(body[:len(body)/2])
		http.NewResponseController(w).Flush()
	}
	reset(w)
}
