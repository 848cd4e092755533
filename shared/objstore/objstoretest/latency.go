package objstoretest

import (
	"math"
	"math/rand/v2"
	"net/http"
	"time"
)

// Latency decides how long FaultProxy holds a request before forwarding it,
// standing in for an object store's time to first byte.
type Latency interface {
	Delay(r *http.Request) time.Duration
}

// Fixed is a constant Latency.
type Fixed time.Duration

// Delay implements Latency.
func (f Fixed) Delay(*http.Request) time.Duration { return time.Duration(f) }

// Lognormal is a Latency whose median is P50 and 99th percentile P99. A
// lognormal fits measured S3 request latencies well (a floor-ish body and a
// long right tail) and is fixed by exactly the two numbers providers
// publish: ln X ~ N(mu, sigma) with mu = ln P50 and sigma = ln(P99/P50)/z99.
type Lognormal struct {
	P50, P99 time.Duration
}

// z99 is the standard normal's 99th percentile.
const z99 = 2.3263478740408408

// Delay implements Latency.
func (l Lognormal) Delay(*http.Request) time.Duration {
	if l.P50 <= 0 {
		return 0
	}
	sigma := 0.0
	if l.P99 > l.P50 {
		sigma = math.Log(float64(l.P99)/float64(l.P50)) / z99
	}
	return time.Duration(float64(l.P50) * math.Exp(sigma*rand.NormFloat64()))
}

// Transfer is a Latency that also charges for the bytes a response
// carries: after its first byte, a body arrives at one connection's
// throughput. FaultProxy adds TransferTime for the response's
// Content-Length to the time it holds the response.
type Transfer interface {
	TransferTime(r *http.Request, bytes int64) time.Duration
}

// ByMethod gives reads (GET, HEAD) and writes (everything else: PUT, POST
// for multipart, DELETE) their own Latency; either may be nil for none.
// ReadBytesPerSecond, when positive, is one connection's throughput for a
// GET's body (Transfer): without it a large GET costs what a small one
// does, and a reader trading many small GETs for fewer large ones would
// look better than it is.
type ByMethod struct {
	Read, Write        Latency
	ReadBytesPerSecond float64
}

// TransferTime implements Transfer: a GET's body at ReadBytesPerSecond.
func (m ByMethod) TransferTime(r *http.Request, n int64) time.Duration {
	if m.ReadBytesPerSecond <= 0 || r.Method != http.MethodGet || n <= 0 {
		return 0
	}
	return time.Duration(float64(n) / m.ReadBytesPerSecond * float64(time.Second))
}

// Delay implements Latency.
func (m ByMethod) Delay(r *http.Request) time.Duration {
	l := m.Write
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		l = m.Read
	}
	if l == nil {
		return 0
	}
	return l.Delay(r)
}

// s3ConnectionBytesPerSecond is the models' throughput of one GET's body:
// the ~90 MB/s one connection to S3 commonly gets (AWS's performance
// guidance scales throughput by parallel connections and suggests 8-16
// MB byte-range GETs, so a GET of a few MB costs little more than its
// first byte). An assumption, as no per-connection figure is published;
// Express gets the same, for the same reason.
const s3ConnectionBytesPerSecond = 90e6

// Latency models used by the benchmarks.
var (
	// S3Standard: PUT p50 60 ms / p99 250 ms, GET p50 30 ms / p99 120 ms
	// to the first byte, then the body at 90 MB/s.
	S3Standard = ByMethod{
		Write:              Lognormal{P50: 60 * time.Millisecond, P99: 250 * time.Millisecond},
		Read:               Lognormal{P50: 30 * time.Millisecond, P99: 120 * time.Millisecond},
		ReadBytesPerSecond: s3ConnectionBytesPerSecond,
	}
	// S3Express (one-zone): PUT p50 5 ms / p99 15 ms; reads use the same
	// figures, as we have no separate published GET numbers to model.
	S3Express = ByMethod{
		Write:              Lognormal{P50: 5 * time.Millisecond, P99: 15 * time.Millisecond},
		Read:               Lognormal{P50: 5 * time.Millisecond, P99: 15 * time.Millisecond},
		ReadBytesPerSecond: s3ConnectionBytesPerSecond,
	}
)
