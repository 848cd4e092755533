package chaos

import (
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"
)

// tp names a partition.
type tp struct {
	topic     string
	partition int32
}

func (p tp) String() string { return fmt.Sprintf("%s/%d", p.topic, p.partition) }

// ack is one acknowledged produce: the record's value was stored at offset.
type ack struct {
	seq      int64 // the producer's sequence for this partition (in the value)
	offset   int64
	issued   time.Time // when the record was handed to the client
	acked    time.Time
	valueKey string
}

// history is everything the workload observed, as the checker needs it.
// It is written by many goroutines; the checker reads it after the
// workload stopped.
type history struct {
	mu sync.Mutex
	// acks per data partition, in acknowledgement order.
	acks map[tp][]ack
	// failed counts records whose produce ended in an error (not
	// acknowledged: they may or may not be stored).
	failed map[tp]int
	// unacked is values produced whose outcome is still unknown or failed:
	// the final read may find them at most once.
	unacked map[string]bool
	// produced counts every record handed to a producer.
	produced int
	// deleteBelow is, per partition, the highest offset a DeleteRecords
	// on a data topic asked for (confirmed or not): acknowledged records
	// below it may legitimately be gone.
	deleteBelow map[tp]int64
	// committed is the last committed offset each group was seen with.
	committed map[string]map[tp]int64
	// regressions are commits seen moving backwards.
	regressions []string
	// consumed is every value a group member processed (before it
	// committed), per group.
	consumed map[string]map[string]bool
	// admin counts admin operations by "op:outcome".
	admin map[string]int
	// eos is what the exactly-once pipeline saw.
	eos eosStats
}

// eosStats are the exactly-once pipeline's own counts (the checker decides
// from the output alone; these only describe the run).
type eosStats struct {
	// consumed counts records polled (records of aborted transactions are
	// polled again, and counted again).
	consumed int
	// committed and aborted count transactions End reported committed or
	// aborted; endErrors counts Ends that returned an error (the outcome
	// unknown to the pipeline; the session is replaced) and failed other
	// errors (Begin, a session that could not be created).
	committed, aborted, endErrors, failed int
	// produceErrors counts transactions whose produce failed (then
	// aborted); sessions counts sessions started.
	produceErrors, sessions int
	// lastErr is the last error seen, for the report.
	lastErr string
}

// eosEvent counts one pipeline event under the history's lock.
func (h *history) eosEvent(f func(s *eosStats)) {
	h.mu.Lock()
	f(&h.eos)
	h.mu.Unlock()
}

func newHistory() *history {
	return &history{
		acks: map[tp][]ack{}, failed: map[tp]int{}, unacked: map[string]bool{},
		deleteBelow: map[tp]int64{}, committed: map[string]map[tp]int64{},
		consumed: map[string]map[string]bool{}, admin: map[string]int{},
	}
}

func (h *history) produce(value string) {
	h.mu.Lock()
	h.produced++
	h.unacked[value] = true
	h.mu.Unlock()
}

func (h *history) acked(p tp, a ack) {
	h.mu.Lock()
	h.acks[p] = append(h.acks[p], a)
	delete(h.unacked, a.valueKey)
	h.mu.Unlock()
}

func (h *history) fail(p tp) {
	h.mu.Lock()
	h.failed[p]++
	h.mu.Unlock()
}

func (h *history) deleteRecords(p tp, below int64) {
	h.mu.Lock()
	h.deleteBelow[p] = max(h.deleteBelow[p], below)
	h.mu.Unlock()
}

// commit records a committed offset seen for group; a smaller offset than
// seen before is a regression.
func (h *history) commit(group string, p tp, offset int64, how string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	g := h.committed[group]
	if g == nil {
		g = map[tp]int64{}
		h.committed[group] = g
	}
	if prev, ok := g[p]; ok && offset < prev {
		h.regressions = append(h.regressions, fmt.Sprintf("group %s %s: committed offset went from %d to %d (%s)", group, p, prev, offset, how))
		return
	}
	g[p] = offset
}

func (h *history) consume(group, value string) {
	h.mu.Lock()
	c := h.consumed[group]
	if c == nil {
		c = map[string]bool{}
		h.consumed[group] = c
	}
	c[value] = true
	h.mu.Unlock()
}

func (h *history) adminOp(op string, err error) {
	outcome := "ok"
	if err != nil {
		outcome = "error"
	}
	h.mu.Lock()
	h.admin[op+":"+outcome]++
	h.mu.Unlock()
}

// ackCount is the number of acknowledged records.
func (h *history) ackCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, as := range h.acks {
		n += len(as)
	}
	return n
}

// recoveryAfter is how long after healed every partition in parts had
// acknowledged a record handed to the producer after healed, and whether
// all of them did.
func (h *history) recoveryAfter(healed time.Time, parts []tp) (time.Duration, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var worst time.Duration
	for _, p := range parts {
		as := h.acks[p]
		first := time.Time{}
		for _, a := range as {
			if !a.issued.Before(healed) && (first.IsZero() || a.acked.Before(first)) {
				first = a.acked
			}
		}
		if first.IsZero() {
			return 0, false
		}
		worst = max(worst, first.Sub(healed))
	}
	return worst, true
}

// ackedBetween lists acknowledgements received in (from, to).
func (h *history) ackedBetween(from, to time.Time) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []string
	for p, as := range h.acks {
		for _, a := range as {
			if a.acked.After(from) && a.acked.Before(to) {
				out = append(out, fmt.Sprintf("%s@%d (handed to the producer %v before, acked %v after the fault began)",
					p, a.offset, from.Add(-2*time.Second).Sub(a.issued).Round(time.Millisecond), a.acked.Sub(from.Add(-2*time.Second)).Round(time.Millisecond)))
			}
		}
	}
	return out
}

// percentile of ds (0..100); 0 when empty.
func percentile(ds []time.Duration, pct float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	i := int(float64(len(s)-1) * pct / 100)
	return s[i]
}
