package chaos

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// env is what faults act on.
type env struct {
	c     *cluster.Cluster
	names map[string][]string // node names by kind ("etcd", "logsvc", ...) and "all", in start order
	net   *network
	s3    *objstoretest.FaultProxy
	disks map[string]string // logsvc name -> its data dir (a size-limited tmpfs)
}

// faultKind is one kind of fault. To add one, append to faultKinds: the
// schedule picks kinds uniformly, then a target, then a duration.
type faultKind struct {
	name string
	// targets is what the kind can hit (node names, link names, "s3"),
	// in a fixed order, so a seed always yields the same schedule. Empty:
	// the kind is unavailable here (and left out of the schedule).
	targets func(e *env) []string
	// inject starts the fault and returns what ends it; heal is called
	// after the fault's duration. A kind that is over at once (a clean
	// restart) returns a heal that does nothing.
	inject         func(e *env, target string) (heal func() error, err error)
	minDur, maxDur time.Duration
}

func nodes(e *env) []string { return e.names["all"] }

var faultKinds = []faultKind{
	{
		name: "kill", targets: nodes, minDur: 500 * time.Millisecond, maxDur: 8 * time.Second,
		// SIGKILL, down for the duration, then restarted on the same data.
		inject: func(e *env, n string) (func() error, error) {
			e.c.Kill(n)
			return func() error { e.c.Restart(n); return nil }, nil
		},
	},
	{
		name: "pause", targets: nodes, minDur: time.Second, maxDur: 10 * time.Second,
		// SIGSTOP: holds its ports and files, answers nothing, renews no
		// lease (a GC pause, a hung VM); SIGCONT at the end.
		inject: func(e *env, n string) (func() error, error) {
			e.c.Stop(n)
			return func() error { e.c.Cont(n); return nil }, nil
		},
	},
	{
		name: "restart", targets: func(*env) []string { return []string{"etcd"} },
		// etcd stopped cleanly (SIGTERM) and started again at once.
		inject: func(e *env, n string) (func() error, error) {
			e.c.Restart(n)
			return func() error { return nil }, nil
		},
	},
	netFault("latency", toxic{kind: "latency"}, time.Second, 10*time.Second),
	netFault("reset", toxic{kind: "reset_peer", attrs: `{"timeout":0}`}, time.Second, 8*time.Second),
	netFault("blackhole", toxic{kind: "timeout", attrs: `{"timeout":0}`}, time.Second, 8*time.Second),
	{
		name: "s3-slowdown", targets: func(*env) []string { return []string{"s3"} }, minDur: 2 * time.Second, maxDur: 12 * time.Second,
		// Every S3 request answered 503 SlowDown for the duration.
		inject: func(e *env, _ string) (func() error, error) {
			e.s3.InjectFor(objstoretest.SlowDown, time.Hour)
			return func() error { e.s3.Reset(); return nil }, nil
		},
	},
	{
		name: "disk-full", minDur: 2 * time.Second, maxDur: 10 * time.Second,
		targets: func(e *env) []string {
			var out []string
			for _, n := range e.names["logsvc"] {
				if e.disks[n] != "" {
					out = append(out, n)
				}
			}
			return out
		},
		// A file fills the node's data filesystem; deleting it frees it.
		inject: func(e *env, n string) (func() error, error) {
			path := filepath.Join(e.disks[n], "chaos-filler")
			if err := fill(path); err != nil {
				os.Remove(path)
				return nil, err
			}
			return func() error { return os.Remove(path) }, nil
		},
	},
}

// netFault is a toxiproxy toxic on one proxied link (both directions).
func netFault(name string, t toxic, minDur, maxDur time.Duration) faultKind {
	return faultKind{
		name: name, minDur: minDur, maxDur: maxDur,
		targets: func(e *env) []string { return e.net.links() },
		inject: func(e *env, link string) (func() error, error) {
			if t.kind == "latency" {
				t.attrs = `{"latency":300,"jitter":250}`
			}
			heal, err := e.net.inject(link, t)
			if err != nil {
				return nil, err
			}
			return func() error { heal(); return nil }, nil
		},
	}
}

// fill writes path until the filesystem is full.
func fill(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				return nil
			}
			return err
		}
	}
}

// step is one scheduled fault.
type step struct {
	kind   string
	target string
	at     time.Duration // start, from the first fault's start
	dur    time.Duration
}

func (s step) String() string {
	return fmt.Sprintf("at %6.1fs %s %s for %.1fs", s.at.Seconds(), s.kind, s.target, s.dur.Seconds())
}

// overlapChance is how often a fault starts while the previous one is
// still active (on another target), so faults also meet each other: a
// node killed while S3 is slow, etcd paused while a link is cut.
const overlapChance = 0.25

// schedule derives the fault sequence from seed alone: the same seed and
// the same cluster shape give the same faults, targets, start times and
// durations. Most faults follow the previous one's heal after a quiet gap
// of 1-5 s; some start during it.
func schedule(seed uint64, e *env, total time.Duration) []step {
	rng := rand.New(rand.NewPCG(seed, seed))
	var kinds []faultKind
	for _, k := range faultKinds {
		if len(k.targets(e)) > 0 {
			kinds = append(kinds, k)
		}
	}
	var out []step
	for at := time.Duration(0); at < total; {
		k := kinds[rng.IntN(len(kinds))]
		ts := k.targets(e)
		s := step{kind: k.name, target: ts[rng.IntN(len(ts))], at: at}
		if k.maxDur > k.minDur {
			s.dur = k.minDur + time.Duration(rng.Int64N(int64(k.maxDur-k.minDur)))
		}
		if n := len(out); n > 0 && rng.Float64() < overlapChance && canOverlap(out[n-1], s) {
			// Start inside the previous fault instead of after it.
			prev := out[n-1]
			s.at = prev.at + time.Duration(rng.Int64N(int64(prev.dur)))
		}
		gap := time.Duration(1000+rng.IntN(4000)) * time.Millisecond
		at = max(at, s.at+s.dur+gap)
		out = append(out, s)
	}
	return out
}

// canOverlap tells whether b may start while a is active: not on the same
// target, and not a restart that waits for etcd while the other fault
// keeps etcd away (the restart would wait for a heal that comes after it).
func canOverlap(a, b step) bool {
	return a.target != b.target && a.dur > 0 &&
		!(blocksEtcd(a) && healWaitsForEtcd(b)) && !(blocksEtcd(b) && healWaitsForEtcd(a))
}

// blocksEtcd: while s is active some process cannot reach etcd.
func blocksEtcd(s step) bool {
	switch s.kind {
	case "kill", "pause", "restart":
		return s.target == "etcd"
	case "reset", "blackhole":
		return strings.HasSuffix(s.target, "->etcd")
	}
	return false
}

// healWaitsForEtcd: healing s restarts a service, which is ready only once
// it reached etcd.
func healWaitsForEtcd(s step) bool { return s.kind == "kill" && s.target != "etcd" }

// event is an injection or a heal of step i at its time.
type event struct {
	at   time.Duration
	i    int
	heal bool
}

// timeline orders the steps' injections and heals in time. At one instant
// heals come first (a fault ends before the next starts), except the heal
// of a fault with no duration (a clean restart), which follows its own
// injection.
func timeline(plan []step) []event {
	var evs []event
	for i, s := range plan {
		evs = append(evs, event{at: s.at, i: i}, event{at: s.at + s.dur, i: i, heal: true})
	}
	rank := func(e event) int {
		switch {
		case e.heal && plan[e.i].dur > 0:
			return 0
		case !e.heal:
			return 1
		}
		return 2
	}
	sort.SliceStable(evs, func(a, b int) bool {
		if evs[a].at != evs[b].at {
			return evs[a].at < evs[b].at
		}
		return rank(evs[a]) < rank(evs[b])
	})
	return evs
}

func kindByName(name string) faultKind {
	for _, k := range faultKinds {
		if k.name == name {
			return k
		}
	}
	panic("chaos: unknown fault kind " + name)
}

// describe lists the fault kinds and their targets, for the log.
func describe(e *env) string {
	var b strings.Builder
	for _, k := range faultKinds {
		ts := k.targets(e)
		if len(ts) == 0 {
			fmt.Fprintf(&b, "  %-12s unavailable here\n", k.name)
			continue
		}
		fmt.Fprintf(&b, "  %-12s %d targets (%v..%v)\n", k.name, len(ts), k.minDur, k.maxDur)
	}
	return b.String()
}
