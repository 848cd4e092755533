package hybridstore

import (
	"context"
	"testing"
	"time"
)

// fakeClock is a settable clock for the pacer's rate measurements.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

func TestPacerAutomaticFollowsIngest(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	p := newPacer(0, c.now)
	if got := p.chunk(); got != paceChunk {
		t.Fatalf("automatic pace reads %d bytes at a time, want %d", got, paceChunk)
	}
	if got := p.rate(); got != autoPaceFloor {
		t.Fatalf("pace before any ingest = %v, want the floor %v", got, float64(autoPaceFloor))
	}
	// 40 MiB/s of ingest for a window: the pace goes to twice that.
	p.added(40 << 20)
	c.t = c.t.Add(paceWindow)
	if got, want := p.rate(), float64(autoPaceFactor*(40<<20)); got != want {
		t.Fatalf("pace after 40 MiB/s of ingest = %v, want %v", got, want)
	}
	// Within the window nothing moves.
	p.added(400 << 20)
	c.t = c.t.Add(paceWindow / 2)
	if got, want := p.rate(), float64(autoPaceFactor*(40<<20)); got != want {
		t.Fatalf("pace moved within a window: %v, want %v", got, want)
	}
	// The next windows: the average moves halfway to each measurement,
	// and a quiet node falls back to the floor, never below.
	c.t = c.t.Add(paceWindow / 2) // 400 MiB over 1 s
	if got, want := p.rate(), float64(autoPaceFactor*(40<<20+400<<20)/2); got != want {
		t.Fatalf("pace after a burst = %v, want %v", got, want)
	}
	for range 20 {
		c.t = c.t.Add(paceWindow)
		p.rate()
	}
	if got := p.rate(); got != autoPaceFloor {
		t.Fatalf("pace of a quiet node = %v, want the floor %v", got, float64(autoPaceFloor))
	}
}

func TestPacerFixedAndUnlimited(t *testing.T) {
	c := &fakeClock{t: time.Unix(1_000_000, 0)}
	fixed := newPacer(5<<20, c.now)
	fixed.added(1 << 30) // a fixed rate does not follow ingest
	c.t = c.t.Add(10 * paceWindow)
	if got := fixed.rate(); got != 5<<20 {
		t.Fatalf("fixed pace = %v, want %v", got, float64(5<<20))
	}
	if fixed.chunk() != paceChunk {
		t.Fatalf("fixed pace reads %d bytes at a time, want %d", fixed.chunk(), paceChunk)
	}
	unlimited := newPacer(UnlimitedUploadRate, c.now)
	if got := unlimited.rate(); got != 0 {
		t.Fatalf("unlimited pace = %v, want 0", got)
	}
	if unlimited.chunk() != uploadChunk {
		t.Fatalf("unlimited pace reads %d bytes at a time, want %d", unlimited.chunk(), uploadChunk)
	}
	if err := unlimited.wait(context.Background(), 1<<30, false); err != nil {
		t.Fatal(err)
	}
}

// A paced wait blocks until the bytes are due; a partition far behind
// skips the automatic pace but not an operator's fixed rate.
func TestPacerWaitAndBehind(t *testing.T) {
	auto := newPacer(0, time.Now)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	// The bucket starts full: one chunk passes, the next is due only
	// after paceChunk/autoPaceFloor (~8 ms), and a deadline before that
	// is refused at once.
	if err := auto.wait(ctx, paceChunk, false); err != nil {
		t.Fatal(err)
	}
	short, cancelShort := context.WithTimeout(context.Background(), time.Millisecond)
	defer cancelShort()
	if err := auto.wait(short, paceChunk, false); err == nil {
		t.Fatal("a paced wait with a deadline before its bytes are due succeeded")
	}
	if err := auto.wait(short, paceChunk, true); err != nil {
		t.Fatalf("a partition far behind waited for the automatic pace: %v", err)
	}
	fixed := newPacer(1<<20, time.Now)
	if err := fixed.wait(ctx, paceChunk, true); err != nil {
		t.Fatal(err)
	}
	if err := fixed.wait(short, paceChunk, true); err == nil {
		t.Fatal("a partition far behind skipped the operator's fixed rate")
	}
}
