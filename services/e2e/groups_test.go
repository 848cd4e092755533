package e2e

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// seen counts how often each record value was processed, across members.
type seen struct {
	mu     sync.Mutex
	counts map[string]int
	total  int
}

func newSeen() *seen { return &seen{counts: map[string]int{}} }

func (s *seen) add(v string) {
	s.mu.Lock()
	s.counts[v]++
	s.total++
	s.mu.Unlock()
}

func (s *seen) distinct() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.counts)
}

// waitDistinct waits until n distinct values were processed.
func (s *seen) waitDistinct(ctx context.Context, t testing.TB, n int) {
	t.Helper()
	for s.distinct() < n {
		if ctx.Err() != nil {
			t.Fatalf("only %d of %d records consumed", s.distinct(), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// duplicates lists the values processed more than once.
func (s *seen) duplicates() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var d []string
	for v, n := range s.counts {
		if n > 1 {
			d = append(d, fmt.Sprintf("%s x%d", v, n))
		}
	}
	slices.Sort(d)
	return d
}

// groupMember is a franz-go group consumer that processes what it polls
// before letting a rebalance happen and commits on revoke: the pattern
// that gives exactly-once processing across joins and leaves.
type groupMember struct {
	cl     *kgo.Client
	cancel context.CancelFunc
	done   chan struct{}
}

func startGroupMember(t *testing.T, addr, group, topic string, s *seen, opts ...kgo.Opt) *groupMember {
	t.Helper()
	return runGroupMember(t, addr, group, topic, s, false, opts...)
}

// runGroupMember starts a member; with commitEachPoll it also commits
// after processing every poll, which bounds what a crash can replay to one
// poll per member.
func runGroupMember(t *testing.T, addr, group, topic string, s *seen, commitEachPoll bool, opts ...kgo.Opt) *groupMember {
	t.Helper()
	base := []kgo.Opt{
		kgo.SeedBrokers(addr), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.DisableAutoCommit(), kgo.BlockRebalanceOnPoll(),
		kgo.FetchMaxWait(200 * time.Millisecond), kgo.HeartbeatInterval(300 * time.Millisecond),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, _ map[string][]int32) {
			if err := cl.CommitUncommittedOffsets(ctx); err != nil {
				t.Errorf("commit on revoke: %v", err)
			}
		}),
	}
	cl, err := kgo.NewClient(append(base, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	m := &groupMember{cl: cl, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(m.done)
		for ctx.Err() == nil {
			fs := cl.PollRecords(ctx, 200)
			fs.EachRecord(func(r *kgo.Record) { s.add(string(r.Value)) })
			if commitEachPoll && fs.NumRecords() > 0 {
				// Errors are expected while the coordinator moves; the
				// next commit (or the one on revoke) covers these.
				_ = cl.CommitUncommittedOffsets(ctx)
			}
			cl.AllowRebalance()
		}
	}()
	return m
}

// leave stops polling and closes the client, which commits on revoke and
// sends LeaveGroup.
func (m *groupMember) leave() {
	m.cancel()
	<-m.done
	m.cl.AllowRebalance()
	m.cl.Close()
}

func produceValues(ctx context.Context, t testing.TB, addr, topic string, from, n int) {
	t.Helper()
	prod := newClient(t, addr, kgo.DefaultProduceTopic(topic))
	produceAll(ctx, t, prod, n, func(i int) *kgo.Record {
		v := strconv.Itoa(from + i)
		return &kgo.Record{Key: []byte(v), Value: []byte(v)}
	})
}

// TestConsumerGroupJoinLeaveExactlyOnce runs 3 franz-go members over a
// 12-partition topic; mid-stream a fourth joins and one leaves. With commit
// on revoke every record is processed exactly once across members, with the
// eager (range) and the cooperative-sticky protocols, on local and diskless
// topics. kadm then sees the
// group, its members, its committed offsets and zero lag.
func TestConsumerGroupJoinLeaveExactlyOnce(t *testing.T) {
	s := cluster.StartAllInOne(t)
	diskless := map[string]*string{"storage.mode": kadm.StringPtr("diskless"), "remote.storage.batch.timeout.ms": kadm.StringPtr("10")}
	for _, tc := range []struct {
		name     string
		balancer kgo.GroupBalancer
		configs  map[string]*string
	}{
		{"eager-range", kgo.RangeBalancer(), nil},
		{"cooperative-sticky", kgo.CooperativeStickyBalancer(), nil},
		{"cooperative-sticky-diskless", kgo.CooperativeStickyBalancer(), diskless},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			topic, group := "groups-"+tc.name, "g-"+tc.name
			adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
			if resp, err := adm.CreateTopic(ctx, 12, 1, tc.configs, topic); err != nil || resp.Err != nil {
				t.Fatalf("create topic: %v %v", err, resp.Err)
			}
			prod := startBackgroundProducer(t, s.KafkaAddr(), topic)
			got := newSeen()
			members := make([]*groupMember, 0, 4)
			for range 3 {
				members = append(members, startGroupMember(t, s.KafkaAddr(), group, topic, got, kgo.Balancers(tc.balancer)))
			}
			waitGroupStable(ctx, t, adm, group, 3)
			got.waitDistinct(ctx, t, 1000)
			members = append(members, startGroupMember(t, s.KafkaAddr(), group, topic, got, kgo.Balancers(tc.balancer)))
			waitGroupStable(ctx, t, adm, group, 4)
			got.waitDistinct(ctx, t, got.distinct()+1000)
			members[0].leave()
			waitGroupStable(ctx, t, adm, group, 3)
			got.waitDistinct(ctx, t, got.distinct()+1000)
			total := prod.stop(ctx, t)
			got.waitDistinct(ctx, t, total)
			if d := got.duplicates(); len(d) > 0 {
				t.Fatalf("%d records processed more than once: %v", len(d), d[:min(len(d), 10)])
			}

			// Everything processed was committed by the members' next
			// revoke; commit now from the live members and compare.
			for _, m := range members[1:] {
				if err := m.cl.CommitUncommittedOffsets(ctx); err != nil {
					t.Fatalf("commit: %v", err)
				}
			}
			dg := waitGroupStable(ctx, t, adm, group, 3)
			assigned := 0
			for _, m := range dg.Members {
				ca, ok := m.Assigned.AsConsumer()
				if !ok {
					t.Fatalf("member %s: assignment is not a consumer assignment", m.MemberID)
				}
				for _, tp := range ca.Topics {
					assigned += len(tp.Partitions)
				}
			}
			if assigned != 12 {
				t.Fatalf("members hold %d partitions, want 12", assigned)
			}
			listed, err := adm.ListGroups(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := listed[group]; !ok {
				t.Fatalf("ListGroups %v misses %s", listed.Groups(), group)
			}
			lag, err := adm.Lag(ctx, group)
			if err != nil {
				t.Fatal(err)
			}
			var lagSum, committed int64
			for _, l := range lag[group].Lag.Sorted() {
				if l.Err != nil {
					t.Fatalf("lag %s/%d: %v", l.Topic, l.Partition, l.Err)
				}
				lagSum += l.Lag
				committed += l.Commit.At
			}
			if lagSum != 0 || committed != int64(total) {
				t.Fatalf("lag %d, committed offsets sum %d; want 0 and %d", lagSum, committed, total)
			}
			for _, m := range members[1:] {
				m.leave()
			}
			t.Logf("%s: %d records processed once each by 4 members (1 joined, 1 left mid-stream)", tc.name, total)
		})
	}
}

// waitGroupStable waits until DescribeGroups shows group Stable with n
// members, and returns that description.
func waitGroupStable(ctx context.Context, t testing.TB, adm *kadm.Client, group string, n int) kadm.DescribedGroup {
	t.Helper()
	var last string
	for ctx.Err() == nil {
		described, err := adm.DescribeGroups(ctx, group)
		if err == nil {
			dg := described[group]
			if dg.Err == nil && dg.State == "Stable" && len(dg.Members) == n {
				return dg
			}
			last = fmt.Sprintf("err %v state %s members %d", dg.Err, dg.State, len(dg.Members))
		} else {
			last = err.Error()
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s never Stable with %d members; last: %s", group, n, last)
	return kadm.DescribedGroup{}
}

// backgroundProducer produces numbered records until stopped, so that
// group changes happen mid-stream.
type backgroundProducer struct {
	stopc chan struct{}
	done  chan struct{}
	n     int
	err   error
}

func startBackgroundProducer(t testing.TB, addr, topic string, opts ...kgo.Opt) *backgroundProducer {
	cl := newClient(t, addr, append([]kgo.Opt{kgo.DefaultProduceTopic(topic)}, opts...)...)
	p := &backgroundProducer{stopc: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		for {
			select {
			case <-p.stopc:
				return
			case <-time.After(5 * time.Millisecond):
			}
			batch := make([]*kgo.Record, 20)
			for i := range batch {
				v := strconv.Itoa(p.n + i)
				batch[i] = &kgo.Record{Key: []byte(v), Value: []byte(v)}
			}
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				p.err = err
				return
			}
			p.n += len(batch)
		}
	}()
	return p
}

// stop ends the stream and returns how many records were acknowledged.
func (p *backgroundProducer) stop(ctx context.Context, t testing.TB) int {
	t.Helper()
	close(p.stopc)
	select {
	case <-p.done:
	case <-ctx.Done():
		t.Fatal("producer did not stop")
	}
	if p.err != nil {
		t.Fatalf("background produce: %v", p.err)
	}
	return p.n
}
