package hybridstore

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
)

// Upload pacing. A rolled segment uploaded as fast as the node can read
// it takes the CPU (read, stream, validate, spool, PUT) in one burst of
// several milliseconds per MiB, and produce requests that arrive during
// that burst wait for it: measured at 10k records/s with 1 MiB segments
// on two cores, records acknowledged while a segment uploaded had twice
// the median latency of the others, which made the hybrid topic's
// produce p99 20-60% worse than a local topic's. Spreading the same work
// over time removes that: uploads go in pieces of paceChunk, at a pace
// that keeps well ahead of what the node's hybrid partitions take in.
const (
	// paceChunk is the piece a paced upload reads and sends at a time.
	paceChunk = 128 << 10
	// autoPaceFactor: the automatic pace is this many times the node's
	// hybrid ingest rate, so uploads keep up with room to catch up.
	autoPaceFactor = 2
	// autoPaceFloor is the least automatic pace (a quiet node still
	// uploads a 1 GiB segment in about a minute).
	autoPaceFloor = 16 << 20
	// paceWindow is how often the automatic pace follows the ingest rate.
	paceWindow = time.Second
)

// UnlimitedUploadRate as Options.UploadBytesPerSecond uploads every
// segment as fast as the node can read it.
const UnlimitedUploadRate = -1

// pacer is the node's upload pace over all its hybrid partitions:
// a fixed rate (Options.UploadBytesPerSecond > 0), none (unlimited), or
// automatic (0, the default): autoPaceFactor times the bytes appended to
// the node's uploading hybrid partitions per second (an EWMA over
// paceWindow), at least autoPaceFloor.
type pacer struct {
	lim  *rate.Limiter // nil: unlimited
	auto bool
	now  func() time.Time

	appended atomic.Int64 // bytes appended since the last follow

	mu       sync.Mutex
	last     time.Time // the last follow
	ingest   float64   // EWMA of bytes appended per second
	followed bool      // ingest holds a measurement
}

func newPacer(bytesPerSecond int64, now func() time.Time) *pacer {
	p := &pacer{now: now, last: now()}
	switch {
	case bytesPerSecond > 0:
		p.lim = rate.NewLimiter(rate.Limit(bytesPerSecond), paceChunk)
	case bytesPerSecond == 0:
		p.auto = true
		p.lim = rate.NewLimiter(rate.Limit(autoPaceFloor), paceChunk)
	}
	return p
}

// chunk is how many bytes an upload reads and sends at a time.
func (p *pacer) chunk() int {
	if p.lim == nil {
		return uploadChunk
	}
	return paceChunk
}

// added counts bytes appended to an uploading hybrid partition.
func (p *pacer) added(n int) {
	if p.auto {
		p.appended.Add(int64(n))
	}
}

// follow moves the automatic pace to the ingest rate measured since the
// last follow, at most once per paceWindow.
func (p *pacer) follow() {
	if !p.auto {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	elapsed := now.Sub(p.last)
	if elapsed < paceWindow {
		return
	}
	measured := float64(p.appended.Swap(0)) / elapsed.Seconds()
	p.last = now
	if p.followed {
		p.ingest = (p.ingest + measured) / 2
	} else {
		p.ingest, p.followed = measured, true
	}
	p.lim.SetLimitAt(now, rate.Limit(max(autoPaceFloor, autoPaceFactor*p.ingest)))
}

// wait takes n bytes from the pace. behind says the partition is far
// behind (its bytes not yet in the tier are past half of
// MaxPendingBytes): an automatic pace lets it go at full speed, since
// holding back there would stop produce sooner; a fixed rate is the
// operator's bound and holds.
func (p *pacer) wait(ctx context.Context, n int, behind bool) error {
	if p.lim == nil || (behind && p.auto) {
		return nil
	}
	p.follow()
	return p.lim.WaitN(ctx, min(n, p.lim.Burst()))
}

// rate is the current pace in bytes per second (0: unlimited).
func (p *pacer) rate() float64 {
	if p.lim == nil {
		return 0
	}
	p.follow()
	return float64(p.lim.Limit())
}
