package chaos

import (
	"strings"
	"testing"
	"time"
)

// TestCheckerFindsEachViolation feeds the checker histories with one
// planted violation each: it must name it (and find nothing in the clean
// history), so a campaign that passes has really checked.
func TestCheckerFindsEachViolation(t *testing.T) {
	topics := []dataTopic{{name: "d", partitions: 1, group: "g"}}
	p := tp{"d", 0}
	base := func() (*history, map[tp]map[int64]string, map[tp]int64, map[string]map[tp]int64) {
		h := newHistory()
		stored := map[tp]map[int64]string{p: {}}
		for i := range int64(4) {
			v := "d/0/" + string(rune('a'+i))
			h.produce(v)
			h.acked(p, ack{seq: i, offset: i, issued: time.Now(), acked: time.Now(), valueKey: v})
			h.consume("g", v)
			stored[p][i] = v
		}
		h.commit("g", p, 4, "test")
		return h, stored, map[tp]int64{p: 0}, map[string]map[tp]int64{"g": {p: 4}}
	}
	h, stored, start, commits := base()
	if v := check(h, stored, start, commits, topics, nil); len(v.problems) != 0 || v.acked != 4 {
		t.Fatalf("clean history: acked %d, problems %v", v.acked, v.problems)
	}
	cases := []struct {
		name  string
		plant func(h *history, stored map[tp]map[int64]string, start map[tp]int64, commits map[string]map[tp]int64)
		want  string
		count func(v verdict) int
	}{
		{"lost", func(h *history, s map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			delete(s[p], 2)
		}, "is lost", func(v verdict) int { return v.lost }},
		{"duplicated", func(h *history, s map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			s[p][4] = s[p][1]
		}, "stored 2 times", func(v verdict) int { return v.duplicated }},
		{"misplaced", func(h *history, s map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			s[p][1], s[p][2] = s[p][2], s[p][1]
		}, "but stored at", func(v verdict) int { return v.misplaced }},
		{"reordered", func(h *history, _ map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			h.acks[p][1].offset, h.acks[p][2].offset = 2, 1
		}, "acked at offset", func(v verdict) int { return v.reordered }},
		{"phantom", func(h *history, s map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			s[p][4] = "never-sent"
		}, "which no producer sent", func(v verdict) int { return v.phantom }},
		{"log start past trims", func(h *history, s map[tp]map[int64]string, start map[tp]int64, _ map[string]map[tp]int64) {
			delete(s[p], 0)
			start[p] = 1
		}, "log start 1 is past", func(v verdict) int { return v.lost }},
		{"commit regression", func(h *history, _ map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			h.commit("g", p, 2, "test")
		}, "went from 4 to 2", func(verdict) int { return 1 }},
		{"committed but not processed", func(h *history, _ map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			delete(h.consumed["g"], "d/0/b")
		}, "never processed", func(verdict) int { return 1 }},
		{"two records at one offset", func(h *history, s map[tp]map[int64]string, _ map[tp]int64, _ map[string]map[tp]int64) {
			s[p][3] += "|other"
		}, "holds two records", func(verdict) int { return 1 }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, stored, start, commits := base()
			c.plant(h, stored, start, commits)
			v := check(h, stored, start, commits, topics, nil)
			if !strings.Contains(strings.Join(v.problems, "\n"), c.want) || c.count(v) == 0 {
				t.Fatalf("want a problem containing %q; got %v (verdict %+v)", c.want, v.problems, v)
			}
			// The data topic's share is the whole (it is the only one).
			if tc := v.perTopic["d"]; tc == nil || *tc != v.counts {
				t.Fatalf("per-topic counts %+v, total %+v", tc, v.counts)
			}
		})
	}
	// A DeleteRecords that asked for an offset excuses what lies below it.
	h, stored, start, commits = base()
	h.deleteRecords(p, 2)
	delete(stored[p], 0)
	delete(stored[p], 1)
	start[p] = 2
	if v := check(h, stored, start, commits, topics, nil); len(v.problems) != 0 {
		t.Fatalf("records below a DeleteRecords offset reported: %v", v.problems)
	}
}

// TestScheduleIsAFunctionOfTheSeed: the same seed gives the same faults,
// another seed others.
func TestScheduleIsAFunctionOfTheSeed(t *testing.T) {
	e := &env{
		net:   &network{order: []string{"logsvc-1->etcd", "gateway->logsvc-1", "all->s3"}},
		names: map[string][]string{"all": {"etcd", "logsvc-1", "logsvc-2", "gateway-1"}, "logsvc": {"logsvc-1", "logsvc-2"}},
		disks: map[string]string{"logsvc-1": "/somewhere"},
	}
	text := func(seed uint64) string {
		var b strings.Builder
		for _, s := range schedule(seed, e, 10*time.Minute) {
			b.WriteString(s.String() + "\n")
		}
		return b.String()
	}
	a, b := text(7), text(7)
	if a == "" || a != b {
		t.Fatalf("seed 7 gave\n%s\nthen\n%s", a, b)
	}
	if text(8) == a {
		t.Fatalf("seeds 7 and 8 gave the same schedule\n%s", a)
	}
	plan := schedule(7, e, 30*time.Minute)
	overlaps := 0
	for i, x := range plan {
		for _, y := range plan[i+1:] {
			if y.at < x.at+x.dur && x.at < y.at+y.dur {
				overlaps++
				if !canOverlap(x, y) {
					t.Errorf("%s overlaps %s: a restart would wait for etcd, or one target twice", x, y)
				}
			}
		}
	}
	if overlaps == 0 {
		t.Errorf("30 minutes of seed 7 never overlapped two faults")
	}
	// Every step is injected before it is healed, clean restarts too.
	injected := map[int]bool{}
	for _, ev := range timeline(plan) {
		if ev.heal && !injected[ev.i] {
			t.Fatalf("%s healed before it was injected", plan[ev.i])
		}
		injected[ev.i] = true
	}
	for _, k := range faultKinds {
		if !strings.Contains(a, " "+k.name+" ") {
			t.Errorf("10 minutes of seed 7 never injected %s:\n%s", k.name, a)
		}
	}
}

// TestCheckerFindsEachEOSViolation plants each exactly-once violation in
// the pipeline's output: it must be named and counted (and the clean
// output, with an unacknowledged but stored input record and a probe
// record in it, pass).
func TestCheckerFindsEachEOSViolation(t *testing.T) {
	topics := []dataTopic{{name: "in", partitions: 1, group: "eos", eosOut: "out"}}
	p, o := tp{"in", 0}, tp{"out", 0}
	base := func() (*history, map[tp]map[int64]string, map[string]map[tp]int64, map[tp]map[int64]string) {
		h := newHistory()
		stored := map[tp]map[int64]string{p: {}}
		out := map[tp]map[int64]string{o: {}}
		for i := range int64(5) {
			v := "in/0/" + string(rune('a'+i))
			h.produce(v)
			if i != 3 { // d: its produce failed, but it is stored
				h.acked(p, ack{seq: i, offset: i, issued: time.Now(), acked: time.Now(), valueKey: v})
			} else {
				h.fail(p)
			}
			h.consume("eos", v)
			stored[p][i] = v
			out[o][2*i] = eosPrefix + v // a marker after each record
		}
		out[o][20] = "probe/out/0"
		h.commit("eos", p, 5, "test")
		return h, stored, map[string]map[tp]int64{"eos": {p: 5}}, out
	}
	h, stored, commits, out := base()
	v := check(h, stored, map[tp]int64{p: 0}, commits, topics, out)
	if len(v.problems) != 0 || v.eos.output != 5 || v.eos.belowCommitted != 5 {
		t.Fatalf("clean pipeline: %+v, problems %v", v.eos, v.problems)
	}
	cases := []struct {
		name  string
		plant func(h *history, stored map[tp]map[int64]string, commits map[string]map[tp]int64, out map[tp]map[int64]string)
		want  string
		count func(e eosCounts) int
	}{
		{"duplicated", func(_ *history, _ map[tp]map[int64]string, _ map[string]map[tp]int64, out map[tp]map[int64]string) {
			out[o][11] = eosPrefix + "in/0/b"
		}, "output 2 times", func(e eosCounts) int { return e.duplicated }},
		{"phantom", func(_ *history, _ map[tp]map[int64]string, _ map[string]map[tp]int64, out map[tp]map[int64]string) {
			out[o][11] = eosPrefix + "in/0/z"
		}, "no input record transformed", func(e eosCounts) int { return e.phantom }},
		{"untransformed", func(_ *history, _ map[tp]map[int64]string, _ map[string]map[tp]int64, out map[tp]map[int64]string) {
			out[o][2] = "in/0/b"
		}, "no input record transformed", func(e eosCounts) int { return e.phantom }},
		{"lost acknowledged", func(_ *history, _ map[tp]map[int64]string, _ map[string]map[tp]int64, out map[tp]map[int64]string) {
			delete(out[o], 4)
		}, "in/0/c at offset 2 is not in out", func(e eosCounts) int { return e.lost }},
		{"lost unacknowledged", func(_ *history, _ map[tp]map[int64]string, _ map[string]map[tp]int64, out map[tp]map[int64]string) {
			delete(out[o], 6)
		}, "in/0/d at offset 3 is not in out", func(e eosCounts) int { return e.lost }},
		{"output above the committed offset", func(_ *history, _ map[tp]map[int64]string, commits map[string]map[tp]int64, _ map[tp]map[int64]string) {
			commits["eos"][p] = 4
		}, "final committed offset there is 4", func(e eosCounts) int { return e.uncommitted }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, stored, commits, out := base()
			c.plant(h, stored, commits, out)
			v := check(h, stored, map[tp]int64{p: 0}, commits, topics, out)
			if !strings.Contains(strings.Join(v.problems, "\n"), c.want) || c.count(v.eos) == 0 {
				t.Fatalf("want a problem containing %q; got %v (%+v)", c.want, v.problems, v.eos)
			}
		})
	}
}
