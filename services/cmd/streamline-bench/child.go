package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/streamline-dev/streamline/logsvc/storage/disklessstore"
	"github.com/streamline-dev/streamline/shared/childproc"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// child is an all-in-one binary (--server-bin) run by the bench as a
// separate process, so its memory is measured apart from the load
// generator and the in-process S3 server.
type child struct {
	cmd      *exec.Cmd
	httpAddr string
	exited   chan struct{} // closed once the process has exited
	waitErr  error
	// startup is the time from the exec to the first 200 of /readyz
	// (polled every 10 ms): the cold start, on a fresh data directory.
	startup time.Duration
}

// startChild starts bin with args (its output to out) and waits until its
// /readyz on httpAddr answers 200. On error the process is stopped.
func startChild(ctx context.Context, bin string, args []string, httpAddr string, out io.Writer) (*child, error) {
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = out, out
	childproc.DieWithParent(cmd) // SIGKILL if the bench dies without stopping it (kill -9, a crash)
	began := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &child{cmd: cmd, httpAddr: httpAddr, exited: make(chan struct{})}
	go func() {
		c.waitErr = cmd.Wait()
		close(c.exited)
	}()
	deadline := time.Now().Add(90 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+httpAddr+"/readyz", nil)
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				c.startup = time.Since(began)
				return c, nil
			}
		}
		select {
		case <-c.exited:
			return nil, fmt.Errorf("%s exited before it was ready: %v", bin, c.waitErr)
		case <-ctx.Done():
			c.stop()
			return nil, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			c.stop()
			return nil, fmt.Errorf("%s not ready on http://%s/readyz after 90s", bin, httpAddr)
		}
	}
}

// stop ends the process: SIGTERM, then SIGKILL after 10 s. Idempotent.
func (c *child) stop() {
	select {
	case <-c.exited:
		return
	default:
	}
	c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.cmd.Process.Kill()
		<-c.exited
	}
}

// rss is the process's resident set size in bytes (VmRSS of
// /proc/PID/status).
func (c *child) rss() (int64, error) { return vmRSS(c.cmd.Process.Pid) }

func vmRSS(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	return parseVmRSS(b)
}

// parseVmRSS reads the VmRSS line of a /proc/PID/status ("VmRSS:  1234 kB").
func parseVmRSS(status []byte) (int64, error) {
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		rest, ok := bytes.CutPrefix(sc.Bytes(), []byte("VmRSS:"))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return 0, fmt.Errorf("unexpected VmRSS line %q", sc.Text())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		return kb << 10, err
	}
	return 0, errors.New("no VmRSS in /proc/PID/status (process gone?)")
}

// sample is one observation of a run: when (since produce began), the
// server's RSS and the records acknowledged so far.
type sample struct {
	at    time.Duration
	rss   int64
	acked int64
}

// sampler records the server's RSS (rss, nil: not measured) and the
// acknowledged records (acked) every interval from start until stop.
type sampler struct {
	mu      sync.Mutex
	samples []sample
	done    chan struct{}
	stopped chan struct{}
}

func startSampler(interval time.Duration, rss func() (int64, error), acked func() int64) *sampler {
	s := &sampler{done: make(chan struct{}), stopped: make(chan struct{})}
	start := time.Now()
	take := func() {
		sm := sample{at: time.Since(start), acked: acked()}
		if rss != nil {
			sm.rss, _ = rss() // a failed read (process gone) is a 0 sample
		}
		s.mu.Lock()
		s.samples = append(s.samples, sm)
		s.mu.Unlock()
	}
	go func() {
		defer close(s.stopped)
		t := time.NewTicker(interval)
		defer t.Stop()
		take()
		for {
			select {
			case <-t.C:
				take()
			case <-s.done:
				take()
				return
			}
		}
	}()
	return s
}

// stop ends sampling (after a last sample) and returns the samples.
func (s *sampler) stop() []sample {
	close(s.done)
	<-s.stopped
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// peakEnd is the highest and the last RSS of the samples.
func peakEnd(samples []sample) (peak, end int64) {
	for _, s := range samples {
		peak = max(peak, s.rss)
	}
	if len(samples) > 0 {
		end = samples[len(samples)-1].rss
	}
	return peak, end
}

// window is the throughput between from and to: records acknowledged per
// second and the peak RSS in it (ok false: no two samples in it).
func window(samples []sample, from, to time.Duration) (recPerSec float64, peak int64, ok bool) {
	var first, last *sample
	for i := range samples {
		s := &samples[i]
		if s.at < from || s.at > to {
			continue
		}
		if first == nil {
			first = s
		}
		last = s
		peak = max(peak, s.rss)
	}
	if first == nil || last == first {
		return 0, peak, false
	}
	return float64(last.acked-first.acked) / (last.at - first.at).Seconds(), peak, true
}

// resumedAfter is how long after t acknowledgements moved again (ok
// false: they did not).
func resumedAfter(samples []sample, t time.Duration) (time.Duration, bool) {
	var base int64 = -1
	for _, s := range samples {
		if s.at < t {
			continue
		}
		if base < 0 {
			base = s.acked
			continue
		}
		if s.acked > base {
			return s.at - t, true
		}
	}
	return 0, false
}

// outage makes the in-process S3 refuse every request with fault for dur,
// starting after after.
type outage struct {
	proxy      *objstoretest.FaultProxy
	fault      objstoretest.Fault
	after, dur time.Duration
	timer      *time.Timer
	fired      chan struct{} // closed once the outage began
	before     int64         // the fault's count when it began
}

func startOutage(p *objstoretest.FaultProxy, fault objstoretest.Fault, after, dur time.Duration) *outage {
	o := &outage{proxy: p, fault: fault, after: after, dur: dur, fired: make(chan struct{})}
	o.timer = time.AfterFunc(after, func() {
		o.before = p.Injected(fault)
		p.InjectFor(fault, dur)
		close(o.fired)
	})
	return o
}

// stop ends the outage if it still runs and returns how many requests it
// refused (happened false: the run ended before it began).
func (o *outage) stop() (refused int64, happened bool) {
	if o.timer.Stop() {
		return 0, false
	}
	<-o.fired
	o.proxy.InjectFor(o.fault, 0)
	return o.proxy.Injected(o.fault) - o.before, true
}

// report writes what the run did around the outage: requests refused,
// throughput and peak RSS before, during and after it (until produce
// ended, produced after its start), and when produce resumed.
func (o *outage) report(w io.Writer, samples []sample, refused int64, happened bool, produced time.Duration) {
	if !happened {
		fmt.Fprintf(w, "  S3 outage        none: the run ended before %v\n", o.after)
		return
	}
	end := o.after + o.dur
	fmt.Fprintf(w, "  S3 outage        %v from %v to %v of the run: %d requests refused (%s)\n", o.dur, o.after, end, refused, o.fault)
	for _, win := range []struct {
		name     string
		from, to time.Duration
	}{{"before", 0, o.after}, {"during", o.after, end}, {"after", end, max(produced, end)}} {
		r, peak, ok := window(samples, win.from, win.to)
		if !ok {
			fmt.Fprintf(w, "    %-6s         no samples\n", win.name)
			continue
		}
		fmt.Fprintf(w, "    %-6s         %8.0f rec/s acknowledged", win.name, r)
		if peak > 0 {
			fmt.Fprintf(w, ", server RSS peak %.1f MiB", float64(peak)/(1<<20))
		}
		fmt.Fprintln(w)
	}
	if d, ok := resumedAfter(samples, end); ok {
		fmt.Fprintf(w, "    produce resumed by itself %v after the outage ended\n", d.Round(100*time.Millisecond))
	} else if len(samples) > 0 && samples[len(samples)-1].at > end {
		fmt.Fprintln(w, "    produce did NOT resume after the outage (no record acknowledged)")
	}
}

// rssReport writes the server's RSS of a run against the budget
// (diskless buffer + read cache + ring of recent batches + 200 MiB) and
// its timeline.
func rssReport(w io.Writer, samples []sample, bufBytes, cacheBytes int64) {
	peak, end := peakEnd(samples)
	const ring = disklessstore.DefaultRingBytes
	budget := bufBytes + cacheBytes + ring + 200<<20
	verdict := "within"
	if peak > budget {
		verdict = fmt.Sprintf("OVER by %.1f MiB", float64(peak-budget)/(1<<20))
	}
	fmt.Fprintf(w, "  server RSS       peak %.1f MiB, end %.1f MiB; budget %.0f MiB (diskless buffer %.0f + read cache %.0f + ring %.0f + 200): %s\n",
		float64(peak)/(1<<20), float64(end)/(1<<20), float64(budget)/(1<<20), float64(bufBytes)/(1<<20), float64(cacheBytes)/(1<<20), float64(ring>>20), verdict)
	fmt.Fprint(w, "    RSS MiB / acked rec/s every 5 s:")
	var prev *sample
	for i := range samples {
		s := &samples[i]
		if prev != nil && s.at-prev.at < 5*time.Second && i != len(samples)-1 {
			continue
		}
		r := 0.0
		if prev != nil && s.at > prev.at {
			r = float64(s.acked-prev.acked) / (s.at - prev.at).Seconds()
		}
		fmt.Fprintf(w, " %.0fs:%.0f/%.0f", s.at.Seconds(), float64(s.rss)/(1<<20), r)
		prev = s
	}
	fmt.Fprintln(w)
}
