package main

import (
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spf13/cobra"
)

// progressInterval is how often a progress line is printed.
var progressInterval = time.Second

// counter counts records and bytes from any goroutine.
type counter struct {
	records atomic.Int64
	bytes   atomic.Int64
}

func (c *counter) add(n int) {
	c.records.Add(1)
	c.bytes.Add(int64(n))
}

// progress prints "<verb> N records (B), R records/s" on stderr every
// progressInterval: rewritten in place on a terminal, one line each time
// otherwise.
type progress struct {
	w     io.Writer
	tty   bool
	verb  string
	c     *counter
	start time.Time
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once
	shown bool
}

// addProgressFlag adds --progress to cmd.
func addProgressFlag(cmd *cobra.Command, p *bool) {
	cmd.Flags().BoolVar(p, "progress", false, "print a progress line on stderr every second (default: when stderr is a terminal)")
}

// startProgress starts the progress line if --progress is set, or stderr
// is a terminal and --progress is not set to false. Call finish when done.
func (a *app) startProgress(cmd *cobra.Command, enabled bool, verb string, c *counter) *progress {
	tty := isTerminal(a.stderr)
	if !cmd.Flags().Changed("progress") {
		enabled = tty
	}
	p := &progress{w: a.stderr, tty: tty, verb: verb, c: c, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	if !enabled {
		close(p.done)
		return p
	}
	go p.loop()
	return p
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(progressInterval)
	defer t.Stop()
	lastN, lastT := int64(0), p.start
	for {
		select {
		case <-p.stop:
			if p.shown && p.tty {
				fmt.Fprint(p.w, "\r\033[K") // clear the line for the summary
			}
			return
		case now := <-t.C:
			n, b := p.c.records.Load(), p.c.bytes.Load()
			rate := float64(n-lastN) / now.Sub(lastT).Seconds()
			lastN, lastT = n, now
			line := fmt.Sprintf("%s %s (%s) in %s, %.0f records/s", p.verb, plural(n, "record"), byteSize(b),
				now.Sub(p.start).Round(time.Second), rate)
			if p.tty {
				fmt.Fprintf(p.w, "\r%s\033[K", line)
			} else {
				fmt.Fprintln(p.w, line)
			}
			p.shown = true
		}
	}
}

// finish stops the progress line.
func (p *progress) finish() {
	p.once.Do(func() { close(p.stop) })
	<-p.done
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// byteSize is n in B, KiB, MiB or GiB.
func byteSize(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}
