package chaos

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// verdict is what the checker found. The campaign fails when any list is
// not empty.
type verdict struct {
	counts
	// perTopic splits the counts by data topic (unacknowledged duplicates
	// and phantoms by the topic they were found in).
	perTopic map[string]*counts
	// eos is the exactly-once pipeline's check.
	eos      eosCounts
	problems []string
}

// eosCounts are the exactly-once check's tallies: output records read
// (read_committed; the probes' records excepted), input records below the
// group's final committed offsets, and the violations.
type eosCounts struct {
	output, belowCommitted                 int
	duplicated, phantom, lost, uncommitted int
}

// counts are the checker's tallies.
type counts struct {
	acked, lost, duplicated, misplaced, reordered, phantom int
}

// of is topic's counts.
func (v *verdict) of(topic string) *counts {
	if v.perTopic == nil {
		v.perTopic = map[string]*counts{}
	}
	c := v.perTopic[topic]
	if c == nil {
		c = &counts{}
		v.perTopic[topic] = c
	}
	return c
}

// locTopic is the topic of a "topic/partition@offset" location.
func locTopic(loc string) string {
	topic, _, _ := strings.Cut(loc, "/")
	return topic
}

func (v *verdict) problem(format string, args ...any) {
	// Keep the report readable: the first problems tell the story.
	if len(v.problems) < 50 {
		v.problems = append(v.problems, fmt.Sprintf(format, args...))
	}
}

// readAll reads every data partition from its log start to its end offset
// and returns, per partition, the value stored at each offset and the log
// start.
func readAll(ctx context.Context, seeds []string, topics []dataTopic) (map[tp]map[int64]string, map[tp]int64, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.FetchMaxWait(200*time.Millisecond))
	if err != nil {
		return nil, nil, err
	}
	defer cl.Close()
	a := kadm.NewClient(cl)
	var names []string
	for _, d := range topics {
		names = append(names, d.name)
	}
	ends, err := a.ListEndOffsets(ctx, names...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("end offsets: %w", err)
	}
	starts, err := a.ListStartOffsets(ctx, names...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return nil, nil, fmt.Errorf("start offsets: %w", err)
	}
	logStart := map[tp]int64{}
	want := map[tp]int64{}
	consume := map[string]map[int32]kgo.Offset{}
	starts.Each(func(o kadm.ListedOffset) {
		p := tp{o.Topic, o.Partition}
		logStart[p] = o.Offset
		if end, ok := ends.Lookup(o.Topic, o.Partition); ok && end.Offset > o.Offset {
			want[p] = end.Offset
			if consume[o.Topic] == nil {
				consume[o.Topic] = map[int32]kgo.Offset{}
			}
			consume[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	stored := map[tp]map[int64]string{}
	for p := range logStart {
		stored[p] = map[int64]string{}
	}
	if len(want) == 0 {
		return stored, logStart, nil
	}
	cl.AddConsumePartitions(consume)
	done := func() bool {
		for p, end := range want {
			if int64(len(stored[p])) < end-logStart[p] {
				return false
			}
		}
		return true
	}
	// Reading a long diskless history takes a while (one range GET per
	// small object until merging lands), so the limit is on a stall, not
	// on the total: no new record for stallAfter fails.
	const stallAfter = time.Minute
	for !done() {
		pctx, cancel := context.WithTimeout(ctx, stallAfter)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil || (pctx.Err() != nil && fs.NumRecords() == 0) {
			return nil, nil, fmt.Errorf("reading back: no record for %v (%s)", stallAfter, progress(stored, logStart, want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			p := tp{r.Topic, r.Partition}
			if end, ok := want[p]; ok && r.Offset < end {
				if prev, dup := stored[p][r.Offset]; dup && prev != string(r.Value) {
					stored[p][r.Offset] = prev + "|" + string(r.Value) // two records at one offset
					return
				}
				stored[p][r.Offset] = string(r.Value)
			}
		})
	}
	return stored, logStart, nil
}

func progress(stored map[tp]map[int64]string, start, want map[tp]int64) string {
	var b strings.Builder
	for p, end := range want {
		if n := int64(len(stored[p])); n < end-start[p] {
			fmt.Fprintf(&b, "%s: %d of %d records; ", p, n, end-start[p])
		}
	}
	return b.String()
}

// check compares what was read back with the history: every acknowledged
// record exactly once at its acknowledged offset (unless a DeleteRecords
// asked for its offset), no offset holding two records, per partition the
// producer's order, unacknowledged records at most once, nothing that was
// never produced; committed offsets never moved backwards and a committed
// offset means every record below it was processed. eosOut is the
// exactly-once pipeline's output topic as read_committed read it (nil
// without a pipeline): see checkEOS.
func check(h *history, stored map[tp]map[int64]string, logStart map[tp]int64, finalCommits map[string]map[tp]int64, topics []dataTopic,
	eosOut map[tp]map[int64]string) verdict {
	h.mu.Lock()
	defer h.mu.Unlock()
	var v verdict
	where := map[string][]string{} // value -> "partition@offset" it is stored at
	for p, offs := range stored {
		for off, val := range offs {
			if strings.Contains(val, "|") {
				v.problem("%s offset %d holds two records: %s", p, off, val)
			}
			where[val] = append(where[val], fmt.Sprintf("%s@%d", p, off))
		}
	}
	for _, d := range topics {
		for _, p := range d.parts() {
			trimmed := h.deleteBelow[p]
			if logStart[p] > trimmed {
				v.problem("%s: log start %d is past every DeleteRecords offset (%d): records were dropped", p, logStart[p], trimmed)
			}
			as := slices.Clone(h.acks[p])
			slices.SortFunc(as, func(a, b ack) int { return int(a.seq - b.seq) })
			tc := v.of(d.name)
			for i, a := range as {
				v.acked++
				tc.acked++
				if i > 0 && as[i-1].seq >= 0 && a.seq >= 0 && as[i-1].offset >= a.offset {
					v.reordered++
					tc.reordered++
					v.problem("%s: %s (seq %d) acked at offset %d, after %s at %d", p, a.valueKey, a.seq, a.offset, as[i-1].valueKey, as[i-1].offset)
				}
				if a.offset < trimmed {
					continue // DeleteRecords asked for it
				}
				locs := where[a.valueKey]
				switch {
				case len(locs) == 0:
					v.lost++
					tc.lost++
					v.problem("%s: acknowledged %s at offset %d is lost (offset holds %q)", p, a.valueKey, a.offset, stored[p][a.offset])
				case len(locs) > 1:
					v.duplicated++
					tc.duplicated++
					v.problem("%s: acknowledged %s stored %d times: %v", p, a.valueKey, len(locs), locs)
				case stored[p][a.offset] != a.valueKey:
					v.misplaced++
					tc.misplaced++
					v.problem("%s: acknowledged %s at offset %d but stored at %v", p, a.valueKey, a.offset, locs)
				}
			}
		}
	}
	for val, locs := range where {
		if len(locs) > 1 && h.unacked[val] {
			v.duplicated++
			v.of(locTopic(locs[0])).duplicated++
			v.problem("unacknowledged %s stored %d times: %v", val, len(locs), locs)
		}
	}
	// Anything stored that no producer sent.
	sent := map[string]bool{}
	for _, as := range h.acks {
		for _, a := range as {
			sent[a.valueKey] = true
		}
	}
	for val, locs := range where {
		if !sent[val] && !h.unacked[val] {
			v.phantom++
			v.of(locTopic(locs[0])).phantom++
			v.problem("%v holds %q, which no producer sent", locs, val)
		}
	}
	v.problems = append(v.problems, h.regressions...)
	// A committed offset means processed: every acknowledged record below
	// a group's final committed offset was seen by one of its members.
	for _, d := range topics {
		for _, p := range d.parts() {
			c, ok := finalCommits[d.group][p]
			if !ok {
				continue
			}
			for _, a := range h.acks[p] {
				if a.offset < c && a.offset >= h.deleteBelow[p] && a.seq >= 0 && !h.consumed[d.group][a.valueKey] {
					v.problem("group %s committed %s up to %d but never processed %s at offset %d", d.group, p, c, a.valueKey, a.offset)
					break
				}
			}
		}
	}
	for _, d := range topics {
		if d.eosOut != "" && eosOut != nil {
			v.checkEOS(h, d, stored, finalCommits[d.group], eosOut)
		}
	}
	return v
}

// checkEOS checks the exactly-once pipeline from input topic d to
// d.eosOut, whose committed records (read_committed from the log start)
// are out: (1) no output value twice, (2) every output value is eosPrefix
// and an input record's value (one stored in the input log, which the
// churn never trims: acknowledged, or not acknowledged but stored), (3)
// every input record below the group's final committed offset (read with
// RequireStable) output exactly once, and (4) no output of a record at or
// above it (a transaction commits its output and its offsets together, so
// committed output beyond the committed offset would be processed again).
// The probe's own records ("probe/" values, written non-transactionally to
// every partition after the faults) are not the pipeline's and skipped.
// The caller holds h.mu.
func (v *verdict) checkEOS(h *history, d dataTopic, stored map[tp]map[int64]string, commits map[tp]int64, out map[tp]map[int64]string) {
	type at struct {
		p   tp
		off int64
	}
	input := map[string]at{} // input value -> where the input log holds it
	for _, p := range d.parts() {
		for off, val := range stored[p] {
			input[val] = at{p, off}
		}
	}
	outputs := map[string][]string{} // input value -> output locations
	for p, offs := range out {
		for off, val := range offs {
			if strings.HasPrefix(val, "probe/") {
				continue
			}
			v.eos.output++
			loc := fmt.Sprintf("%s@%d", p, off)
			src, ok := strings.CutPrefix(val, eosPrefix)
			if _, in := input[src]; !ok || !in {
				v.eos.phantom++
				v.problem("exactly-once: output %s holds %q, which is no input record transformed", loc, val)
				continue
			}
			outputs[src] = append(outputs[src], loc)
		}
	}
	for src, locs := range outputs {
		if len(locs) > 1 {
			v.eos.duplicated++
			v.problem("exactly-once: input %s (%s@%d) output %d times: %v", src, input[src].p, input[src].off, len(locs), locs)
		}
		if in := input[src]; in.off >= commits[in.p] {
			v.eos.uncommitted++
			v.problem("exactly-once: input %s (%s@%d) output (%v), but the group's final committed offset there is %d", src, in.p, in.off, locs, commits[in.p])
		}
	}
	// Below the committed offset: every acknowledged record, and every
	// other record the input log holds.
	for _, p := range d.parts() {
		c := commits[p]
		below := map[string]int64{}
		for _, a := range h.acks[p] {
			if a.offset < c {
				below[a.valueKey] = a.offset
			}
		}
		for off, val := range stored[p] {
			if off < c {
				below[val] = off
			}
		}
		for val, off := range below {
			v.eos.belowCommitted++
			if len(outputs[val]) == 0 {
				v.eos.lost++
				v.problem("exactly-once: group %s committed %s up to %d, but %s at offset %d is not in %s", d.group, p, c, val, off, d.eosOut)
			}
		}
	}
}
