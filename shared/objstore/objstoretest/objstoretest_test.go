package objstoretest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The lognormal model reproduces the percentiles it was given, which is what
// the benchmarks' latency models rely on.
func TestLognormalPercentiles(t *testing.T) {
	for _, l := range []Lognormal{S3Standard.Write.(Lognormal), S3Standard.Read.(Lognormal), S3Express.Write.(Lognormal)} {
		const n = 40000
		d := make([]time.Duration, n)
		for i := range d {
			d[i] = l.Delay(nil)
		}
		slices.Sort(d)
		p50, p99 := d[n/2], d[n*99/100]
		if rel(p50, l.P50) > 0.05 || rel(p99, l.P99) > 0.1 {
			t.Errorf("%+v: sampled p50 %v p99 %v", l, p50, p99)
		}
	}
}

func rel(got, want time.Duration) float64 {
	d := float64(got-want) / float64(want)
	return max(d, -d)
}

func TestByMethod(t *testing.T) {
	m := ByMethod{Read: Fixed(time.Millisecond), Write: Fixed(time.Second)}
	for method, want := range map[string]time.Duration{"GET": time.Millisecond, "HEAD": time.Millisecond, "PUT": time.Second, "POST": time.Second} {
		if got := m.Delay(httptest.NewRequest(method, "/", nil)); got != want {
			t.Errorf("%s: %v, want %v", method, got, want)
		}
	}
}

// The proxy keeps the client's Host (SigV4 signs it), answers SlowDown as
// S3 does, and applies InjectNext to exactly n requests.
func TestFaultProxy(t *testing.T) {
	var hosts []string
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hosts = append(hosts, r.Host)
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	p, endpoint := StartFaultProxy(t, upstream.URL)

	p.InjectNext(SlowDown, 2)
	var codes []int
	for range 3 {
		resp, err := http.Get(endpoint + "/bucket/key")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		codes = append(codes, resp.StatusCode)
		if resp.StatusCode == 503 && !strings.Contains(string(body), "<Code>SlowDown</Code>") {
			t.Fatalf("503 body %q", body)
		}
	}
	if !slices.Equal(codes, []int{503, 503, 200}) {
		t.Fatalf("status codes %v", codes)
	}
	if want := strings.TrimPrefix(endpoint, "http://"); !slices.Equal(hosts, []string{want}) {
		t.Fatalf("upstream saw Host %q, want the proxy's %q", hosts, want)
	}
	p.InjectNext(DropRequest, 1)
	// A fresh connection: on a reused one Go's transport would quietly
	// retry the GET, taking the reset for a closed idle connection.
	fresh := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	if _, err := fresh.Get(endpoint + "/x"); err == nil {
		t.Fatal("dropped request got an answer")
	}
	if p.Requests() != 4 || p.Injected(SlowDown) != 2 || p.Injected(DropRequest) != 1 {
		t.Fatalf("counts: %d requests, %d SlowDown, %d dropped", p.Requests(), p.Injected(SlowDown), p.Injected(DropRequest))
	}
	if p.RequestsOf(http.MethodGet) != 4 || p.RequestsOf(http.MethodPut) != 0 {
		t.Fatalf("by method: %d GETs, %d PUTs; want 4 and 0", p.RequestsOf(http.MethodGet), p.RequestsOf(http.MethodPut))
	}
}

// A forwarded request's latency is its time to first byte from its arrival
// at the proxy: the server gets it at once and works meanwhile, and the
// answer is held until the delay has passed. (The server's own time is part
// of the modeled latency, not added to it.)
func TestFaultProxyLatencyIsTimeToFirstByte(t *testing.T) {
	reached := make(chan time.Time, 1)
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached <- time.Now()
		io.WriteString(w, "ok")
	}))
	defer upstream.Close()
	p, endpoint := StartFaultProxy(t, upstream.URL)
	const delay = time.Second
	p.SetLatency(Fixed(delay))
	start := time.Now()
	resp, err := http.Get(endpoint + "/bucket/key")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	answered := time.Since(start)
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("got %d %q", resp.StatusCode, body)
	}
	if answered < delay {
		t.Fatalf("answered after %v, before the %v latency", answered, delay)
	}
	// The server got the request before the answer was released: held
	// while the delay ran, not sent after it.
	if at := <-reached; at.Sub(start) >= delay {
		t.Fatalf("the server got the request %v after it was sent: the proxy waited out the latency first", at.Sub(start))
	}

	// A request abandoned while held is not answered.
	ctx, cancel := context.WithTimeout(t.Context(), delay/3)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/bucket/key", nil)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("a request canceled during the latency got an answer")
	}
}

// A model with a read throughput holds a GET's answer for its body's
// bytes at that rate on top of the time to first byte; PUTs and small
// bodies are not slowed by it.
func TestFaultProxyChargesGETBodies(t *testing.T) {
	const size = 1 << 20
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := 10
		if r.URL.Path == "/bucket/large" {
			n = size
		}
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(make([]byte, n))
	}))
	defer upstream.Close()
	p, endpoint := StartFaultProxy(t, upstream.URL)
	// 1 MiB at 2 MiB/s: half a second.
	p.SetLatency(ByMethod{ReadBytesPerSecond: 2 * size})
	took := func(method, key string) time.Duration {
		start := time.Now()
		req, _ := http.NewRequest(method, endpoint+"/bucket/"+key, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	if d := took(http.MethodGet, "large"); d < size*time.Second/(2*size) {
		t.Fatalf("a GET of 1 MiB at 2 MiB/s was answered in %v, under 500ms", d)
	}
	// Not asserted as fast (a loaded machine may be slow), but they must
	// not carry the large body's charge: 10 bytes cost 5 µs, a PUT none.
	if d := took(http.MethodGet, "small"); d >= 400*time.Millisecond {
		t.Errorf("a GET of 10 bytes took %v: charged as if large", d)
	}
	if d := took(http.MethodPut, "large"); d >= 400*time.Millisecond {
		t.Errorf("a PUT took %v: reads' throughput charged to a write", d)
	}
	m := ByMethod{ReadBytesPerSecond: 1e6}
	if got := m.TransferTime(httptest.NewRequest(http.MethodGet, "/", nil), 1e6); got != time.Second {
		t.Errorf("TransferTime(GET, 1 MB at 1 MB/s) = %v", got)
	}
	if got := m.TransferTime(httptest.NewRequest(http.MethodPut, "/", nil), 1e6); got != 0 {
		t.Errorf("TransferTime(PUT) = %v, want 0", got)
	}
}
