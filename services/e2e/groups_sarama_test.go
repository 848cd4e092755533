package e2e

import (
	"context"
	"errors"
	"fmt"
	"log"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestSaramaConsumerGroup runs two IBM/sarama ConsumerGroup members in one
// group over a 6-partition topic holding N records. Once about half the
// records were processed one member leaves, and the other takes over all
// six partitions from the offsets the leaver committed on its way out.
// Every record is processed, the group's committed offsets end at the log
// end offsets (lag 0), and a fresh member of the same group resumes from
// them: it receives only the records produced after it joined.
func TestSaramaConsumerGroup(t *testing.T) {
	s := cluster.StartAllInOne(t)
	for _, tc := range []struct {
		name     string
		version  sarama.KafkaVersion
		strategy sarama.BalanceStrategy
	}{
		{"range-v2.8", sarama.V2_8_0_0, sarama.NewBalanceStrategyRange()},
		{"roundrobin-v3.6", sarama.V3_6_0_0, sarama.NewBalanceStrategyRoundRobin()},
		{"cooperative-sticky-v3.6", sarama.V3_6_0_0, sarama.NewBalanceStrategyCooperativeSticky()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			const n, partitions = 3000, 6
			topic, group := "sarama-group-"+tc.name, "sarama-g-"+tc.name
			adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
			if resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil || resp.Err != nil {
				t.Fatalf("create topic: %v %v", err, resp.Err)
			}
			produceValues(ctx, t, s.KafkaAddr(), topic, 0, n)
			captureSaramaLog(t)

			cfg := sarama.NewConfig()
			cfg.Version = tc.version
			cfg.ClientID = "e2e-" + tc.name
			cfg.Consumer.Return.Errors = true
			cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
			cfg.Consumer.Offsets.AutoCommit.Enable = true
			cfg.Consumer.Offsets.AutoCommit.Interval = 100 * time.Millisecond
			cfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
			cfg.Consumer.Group.Session.Timeout = 10 * time.Second
			cfg.Consumer.Group.Rebalance.GroupStrategies = []sarama.BalanceStrategy{tc.strategy}
			cfg.Consumer.MaxWaitTime = 200 * time.Millisecond

			// Members block in ConsumeClaim until both joined, so the
			// group really splits the topic before one of them leaves.
			got := newSeen()
			start := make(chan struct{})
			a := startSaramaMember(t, s.KafkaAddr(), group, topic, cfg, got, start, 5*time.Millisecond)
			b := startSaramaMember(t, s.KafkaAddr(), group, topic, cfg, got, start, 5*time.Millisecond)
			dg := waitGroupStable(ctx, t, adm, group, 2)
			if dg.Protocol != tc.strategy.Name() {
				t.Fatalf("group protocol %q, want %q", dg.Protocol, tc.strategy.Name())
			}
			waitSaramaClaims(ctx, t, partitions, a, b)
			close(start)

			got.waitDistinct(ctx, t, n/2)
			a.stop(t)
			left := n - got.distinct()
			t.Logf("%d records left when the first member stopped", left)
			if left < n/10 {
				t.Fatalf("only %d records left when the first member stopped; the take-over is not exercised", left)
			}
			waitGroupStable(ctx, t, adm, group, 1)
			waitSaramaClaims(ctx, t, partitions, b)
			dg = waitGroupStable(ctx, t, adm, group, 1)
			if ca, ok := dg.Members[0].Assigned.AsConsumer(); !ok || len(ca.Topics) != 1 || len(ca.Topics[0].Partitions) != partitions {
				t.Fatalf("DescribeGroups: remaining member is assigned %+v, want all %d partitions", ca, partitions)
			}
			got.waitDistinct(ctx, t, n)
			b.stop(t)
			for _, m := range []*saramaMember{a, b} {
				if errs := m.errors(); len(errs) > 0 {
					t.Errorf("member errors: %v", errs)
				}
			}
			if d := got.duplicates(); len(d) > 0 {
				// Sarama commits what was marked when a session ends, so
				// a take-over should not reprocess anything.
				t.Errorf("%d records processed more than once: %v", len(d), d[:min(len(d), 10)])
			}
			assertGroupCaughtUp(ctx, t, adm, group, topic, partitions, n)

			// A fresh member resumes from the committed offsets: nothing
			// old, exactly the 10 records produced after it joined.
			fresh := newSeen()
			started := make(chan struct{})
			close(started)
			c := startSaramaMember(t, s.KafkaAddr(), group, topic, cfg, fresh, started, 0)
			waitGroupStable(ctx, t, adm, group, 1)
			waitSaramaClaims(ctx, t, partitions, c)
			time.Sleep(2 * time.Second)
			if fresh.distinct() != 0 {
				t.Fatalf("fresh member re-consumed %d committed records", fresh.distinct())
			}
			produceValues(ctx, t, s.KafkaAddr(), topic, n, 10)
			fresh.waitDistinct(ctx, t, 10)
			time.Sleep(time.Second)
			c.stop(t)
			fresh.mu.Lock()
			var vals []string
			for v, k := range fresh.counts {
				if k != 1 {
					t.Errorf("fresh member got %s %d times", v, k)
				}
				vals = append(vals, v)
			}
			fresh.mu.Unlock()
			slices.Sort(vals)
			var want []string
			for i := n; i < n+10; i++ {
				want = append(want, strconv.Itoa(i))
			}
			slices.Sort(want)
			if !slices.Equal(vals, want) {
				t.Fatalf("fresh member got %v, want %v", vals, want)
			}
			assertGroupCaughtUp(ctx, t, adm, group, topic, partitions, n+10)
		})
	}
}

// saramaMember runs one sarama ConsumerGroup's Consume loop.
type saramaMember struct {
	cg     sarama.ConsumerGroup
	h      *saramaHandler
	cancel context.CancelFunc
	done   chan struct{}
	mu     sync.Mutex
	errs   []error
}

func startSaramaMember(t *testing.T, addr, group, topic string, cfg *sarama.Config, s *seen, start <-chan struct{}, delay time.Duration) *saramaMember {
	t.Helper()
	cg, err := sarama.NewConsumerGroup([]string{addr}, group, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &saramaMember{cg: cg, h: &saramaHandler{s: s, start: start, delay: delay}, cancel: cancel, done: make(chan struct{})}
	go func() {
		for err := range cg.Errors() {
			m.addErr(err)
		}
	}()
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, m.h); err != nil {
				if errors.Is(err, sarama.ErrClosedConsumerGroup) {
					return
				}
				m.addErr(err)
				time.Sleep(100 * time.Millisecond)
			}
		}
	}()
	t.Cleanup(func() { m.stop(t) })
	return m
}

func (m *saramaMember) addErr(err error) {
	m.mu.Lock()
	m.errs = append(m.errs, err)
	m.mu.Unlock()
}

func (m *saramaMember) errors() []error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.errs)
}

// stop ends the session (which commits what was marked) and leaves.
func (m *saramaMember) stop(t *testing.T) {
	m.cancel()
	select {
	case <-m.done:
	case <-time.After(30 * time.Second):
		t.Errorf("sarama Consume did not return")
	}
	if err := m.cg.Close(); err != nil {
		m.addErr(fmt.Errorf("close: %w", err))
	}
}

// claimed is how many partitions the member is consuming: ConsumeClaim
// runs once per partition held, with the eager and cooperative protocols.
func (m *saramaMember) claimed() int {
	m.h.mu.Lock()
	defer m.h.mu.Unlock()
	return m.h.claims
}

// waitSaramaClaims waits until the members together consume n partitions,
// each of them at least one. With the cooperative protocol the group is
// Stable in between the two rebalances that move partitions to a joiner,
// so the group's state alone does not say the partitions were split.
func waitSaramaClaims(ctx context.Context, t *testing.T, n int, ms ...*saramaMember) {
	t.Helper()
	for {
		sum, each := 0, true
		var held []int
		for _, m := range ms {
			c := m.claimed()
			sum += c
			each = each && c > 0
			held = append(held, c)
		}
		if sum == n && each {
			return
		}
		if ctx.Err() != nil {
			t.Fatalf("members consume %v partitions, want %d in all, some each", held, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// saramaHandler processes and marks every message of its claims.
type saramaHandler struct {
	s     *seen
	start <-chan struct{}
	delay time.Duration

	mu     sync.Mutex
	claims int // running ConsumeClaim calls
}

func (h *saramaHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *saramaHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *saramaHandler) ConsumeClaim(sess sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	h.mu.Lock()
	h.claims++
	h.mu.Unlock()
	defer func() {
		h.mu.Lock()
		h.claims--
		h.mu.Unlock()
	}()
	// Until start, hold what arrives; keep reading so that a revoked
	// claim (its Messages channel closes) still returns promptly.
	var held []*sarama.ConsumerMessage
	for waiting := true; waiting; {
		select {
		case <-h.start:
			waiting = false
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			held = append(held, msg)
		case <-sess.Context().Done():
			return nil
		}
	}
	for _, msg := range held {
		if sess.Context().Err() != nil {
			return nil
		}
		h.process(sess, msg)
	}
	for {
		select {
		case msg, ok := <-claim.Messages():
			if !ok {
				return nil
			}
			h.process(sess, msg)
		case <-sess.Context().Done():
			return nil
		}
	}
}

func (h *saramaHandler) process(sess sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage) {
	h.s.add(string(msg.Value))
	sess.MarkMessage(msg, "")
	if h.delay > 0 {
		time.Sleep(h.delay)
	}
}

// assertGroupCaughtUp checks that group's committed offsets on topic equal
// the log end offsets of all its partitions and sum to total.
func assertGroupCaughtUp(ctx context.Context, t testing.TB, adm *kadm.Client, group, topic string, partitions, total int) {
	t.Helper()
	committed, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	if err := committed.Error(); err != nil {
		t.Fatalf("fetch offsets: %v", err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatalf("list end offsets: %v", err)
	}
	var sum int64
	var diffs []string
	for p := int32(0); p < int32(partitions); p++ {
		c, ok := committed.Lookup(topic, p)
		end, eok := ends.Lookup(topic, p)
		if !eok || end.Err != nil {
			t.Fatalf("end offset %s/%d: %v", topic, p, end.Err)
		}
		if !ok {
			diffs = append(diffs, fmt.Sprintf("%d: no commit, end %d", p, end.Offset))
			continue
		}
		sum += c.At
		if c.At != end.Offset {
			diffs = append(diffs, fmt.Sprintf("%d: committed %d, end %d", p, c.At, end.Offset))
		}
	}
	if len(diffs) > 0 || sum != int64(total) {
		t.Fatalf("group %s: committed offsets sum %d, want %d; %s", group, sum, total, strings.Join(diffs, "; "))
	}
	lags, err := adm.Lag(ctx, group)
	if err != nil {
		t.Fatalf("lag: %v", err)
	}
	gl := lags[group]
	if gl.Error() != nil {
		t.Fatalf("lag %s: %v", group, gl.Error())
	}
	for _, l := range gl.Lag.Sorted() {
		if l.Err != nil {
			t.Fatalf("lag %s/%d: %v", l.Topic, l.Partition, l.Err)
		}
	}
	if lag := gl.Lag.Total(); lag != 0 || len(gl.Lag[topic]) != partitions {
		t.Fatalf("group %s: lag %d over %d partitions, want 0 over %d", group, lag, len(gl.Lag[topic]), partitions)
	}
}

// captureSaramaLog points sarama's global logger at a buffer for the rest
// of the test, and logs the buffer if the test failed. Call it before
// starting the clients, so that their cleanups run first.
func captureSaramaLog(t *testing.T) {
	t.Helper()
	b := &saramaLogBuffer{}
	prev := sarama.Logger
	sarama.Logger = log.New(b, "", log.Lmicroseconds)
	t.Cleanup(func() {
		sarama.Logger = prev
		if t.Failed() {
			t.Logf("sarama log:\n%s", b.String())
		}
	})
}

type saramaLogBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *saramaLogBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *saramaLogBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
