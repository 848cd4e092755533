package e2e

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestKcatBalancedConsumer runs two kcat -G processes (librdkafka's
// balanced consumer) in one group over a 4-partition topic. Together they
// read the 1000 records produced before they started; once the group is
// Stable with both, each holds two partitions and both read part of 1000
// more. After SIGINT (librdkafka commits on close) every record was read,
// none twice, and the group's committed offsets are the log end offsets.
func TestKcatBalancedConsumer(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Fatal("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	const n, partitions = 1000, 4
	topic, group := "kcat-group", "kcat-g"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	produceValues(ctx, t, s.KafkaAddr(), topic, 0, n)

	// kcat stores each printed message's offset; librdkafka commits the
	// stored offsets every auto.commit.interval.ms, when partitions are
	// revoked and on close (it does the last two even with
	// enable.auto.commit=false).
	var members []*kcatMember
	for _, id := range []string{"kcat-a", "kcat-b"} {
		members = append(members, startKcatMember(ctx, t, kcat, id,
			"-b", s.KafkaAddr(), "-G", group, topic, "-u", "-f", "%s\n",
			"-X", "client.id="+id,
			"-X", "auto.offset.reset=earliest",
			"-X", "auto.commit.interval.ms=100",
			"-X", "session.timeout.ms=10000",
			"-X", "heartbeat.interval.ms=500",
		))
	}
	union := func() map[string]int {
		u := map[string]int{}
		for _, m := range members {
			for v, k := range m.values() {
				u[v] += k
			}
		}
		return u
	}
	waitUnion := func(want int) {
		t.Helper()
		for len(union()) < want {
			if ctx.Err() != nil {
				t.Fatalf("kcats read %d distinct records, want %d\n%s\n%s", len(union()), want, members[0].diag(), members[1].diag())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	waitUnion(n)

	// Both joined: each holds half of the partitions.
	dg := waitGroupStable(ctx, t, adm, group, 2)
	for _, m := range dg.Members {
		ca, ok := m.Assigned.AsConsumer()
		if !ok {
			t.Fatalf("member %s: assignment is not a consumer assignment", m.ClientID)
		}
		held := 0
		for _, tp := range ca.Topics {
			if tp.Topic == topic {
				held += len(tp.Partitions)
			}
		}
		if held != partitions/2 {
			t.Fatalf("member %s (%s) holds %d partitions, want %d", m.ClientID, m.MemberID, held, partitions/2)
		}
	}
	before := []int{members[0].count(), members[1].count()}
	produceValues(ctx, t, s.KafkaAddr(), topic, n, n)
	waitUnion(2 * n)
	for i, m := range members {
		if m.count() == before[i] {
			t.Errorf("%s read none of the records produced once the group was balanced", m.id)
		}
	}

	for _, m := range members {
		m.interrupt(t)
	}
	u := union()
	var dups []string
	for i := 0; i < 2*n; i++ {
		v := strconv.Itoa(i)
		switch u[v] {
		case 0:
			t.Errorf("record %s never read", v)
		case 1:
		default:
			dups = append(dups, fmt.Sprintf("%s x%d", v, u[v]))
		}
	}
	if len(u) != 2*n {
		t.Errorf("read %d distinct values, want %d", len(u), 2*n)
	}
	// The only rebalance with a partition moving happens when the second
	// kcat joins; librdkafka commits the first one's offsets as the
	// partitions are revoked, so nothing is read twice.
	if len(dups) > 0 {
		t.Errorf("%d records read more than once: %v", len(dups), dups[:min(len(dups), 10)])
	}
	if t.Failed() {
		t.Fatalf("\n%s\n%s", members[0].diag(), members[1].diag())
	}
	assertGroupCaughtUp(ctx, t, adm, group, topic, partitions, 2*n)
	t.Logf("kcat-a read %d, kcat-b read %d records", members[0].count(), members[1].count())
}

// kcatMember is a running kcat -G process and what it printed.
type kcatMember struct {
	id     string
	cmd    *exec.Cmd
	stderr bytes.Buffer
	done   chan struct{}
	err    error

	mu     sync.Mutex
	lines  []string
	stdout chan struct{}
}

func startKcatMember(ctx context.Context, t *testing.T, kcat, id string, args ...string) *kcatMember {
	t.Helper()
	m := &kcatMember{id: id, done: make(chan struct{}), stdout: make(chan struct{})}
	m.cmd = exec.CommandContext(ctx, kcat, args...)
	m.cmd.Stderr = &kcatLockedWriter{w: &m.stderr, mu: &m.mu}
	out, err := m.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := m.cmd.Start(); err != nil {
		t.Fatalf("start kcat: %v", err)
	}
	go func() {
		defer close(m.stdout)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			m.mu.Lock()
			m.lines = append(m.lines, sc.Text())
			m.mu.Unlock()
		}
	}()
	go func() {
		<-m.stdout
		m.err = m.cmd.Wait()
		close(m.done)
	}()
	t.Cleanup(func() {
		select {
		case <-m.done:
		default:
			_ = m.cmd.Process.Kill()
			<-m.done
		}
	})
	return m
}

func (m *kcatMember) values() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]int{}
	for _, l := range m.lines {
		out[l]++
	}
	return out
}

func (m *kcatMember) count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.lines)
}

// interrupt sends SIGINT, on which kcat closes its consumer (committing
// its offsets and leaving the group), and waits for it to exit cleanly.
func (m *kcatMember) interrupt(t *testing.T) {
	t.Helper()
	if err := m.cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatalf("%s: SIGINT: %v", m.id, err)
	}
	select {
	case <-m.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s did not exit within 20s of SIGINT\n%s", m.id, m.diag())
	}
	if m.err != nil {
		t.Fatalf("%s exited with %v\n%s", m.id, m.err, m.diag())
	}
}

func (m *kcatMember) diag() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return fmt.Sprintf("%s: %d lines read; stderr:\n%s", m.id, len(m.lines), m.stderr.String())
}

type kcatLockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (s *kcatLockedWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
