package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/streamline-dev/streamline/services/cluster"
)

// systemPython is Debian's interpreter, which has python3-kafka and
// python3-confluent-kafka; a python3 earlier on PATH may not.
const systemPython = "/usr/bin/python3"

// TestPythonKafkaGroup produces 500 records with kafka-python's KafkaProducer
// (acks=all) and reads them back with a KafkaConsumer in a group, which
// commits them synchronously: every record comes back once, and kadm sees
// the group with its offsets committed to the log end.
func TestPythonKafkaGroup(t *testing.T) {
	runPythonGroup(t, "kafka", "python3-kafka", "testdata/group_kafka_python.py", "py-kafka")
}

// TestPythonConfluentKafkaGroup does the same with confluent-kafka
// (librdkafka): an idempotent Producer, then a Consumer with manual
// synchronous commit.
func TestPythonConfluentKafkaGroup(t *testing.T) {
	runPythonGroup(t, "confluent_kafka", "python3-confluent-kafka", "testdata/group_confluent_kafka.py", "py-confluent")
}

func runPythonGroup(t *testing.T, module, pkg, script, name string) {
	if out, err := exec.Command(systemPython, "-c", "import "+module).CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import %s: apt-get install %s (%v)\n%s", systemPython, module, pkg, err, out)
	}
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const n, partitions = 500, 3
	topic, group := name, name+"-group"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, partitions, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}

	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, systemPython, script, s.KafkaAddr(), topic, group, strconv.Itoa(n), "60")
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: %v after %v\nstderr:\n%s\nstdout (tail):\n%s", script, err, time.Since(start).Round(time.Millisecond), stderr.String(), pyTail(stdout.String(), 2000))
	}
	first, _, _ := bytes.Cut(stdout.Bytes(), []byte("\n"))
	t.Logf("%s ran in %v: %s", script, time.Since(start).Round(time.Millisecond), first)
	if stderr.Len() > 0 {
		t.Logf("%s stderr:\n%s", script, stderr.String())
	}

	type line struct {
		P        *int32 `json:"p"`
		O        int64  `json:"o"`
		V        string `json:"v"`
		Produced int    `json:"produced"`
		Summary  *struct {
			Consumed  int              `json:"consumed"`
			Committed map[string]int64 `json:"committed"`
		} `json:"summary"`
	}
	seenAt := map[string]string{}
	var summary *line
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var l line
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("bad output line %q: %v", sc.Text(), err)
		}
		switch {
		case l.Summary != nil:
			summary = &l
		case l.P != nil:
			at := strconv.Itoa(int(*l.P)) + "/" + strconv.FormatInt(l.O, 10)
			if prev, dup := seenAt[l.V]; dup {
				t.Errorf("value %s read at %s and at %s", l.V, prev, at)
			}
			seenAt[l.V] = at
		}
	}
	for i := 0; i < n; i++ {
		if _, ok := seenAt[strconv.Itoa(i)]; !ok {
			t.Errorf("value %d never read", i)
		}
	}
	if len(seenAt) != n {
		t.Errorf("read %d distinct values, want %d", len(seenAt), n)
	}
	if summary == nil {
		t.Fatalf("no summary line in output")
	}
	var sum int64
	for _, o := range summary.Summary.Committed {
		sum += o
	}
	if summary.Summary.Consumed != n || sum != n {
		t.Errorf("client reports %d consumed and committed %v (sum %d), want %d", summary.Summary.Consumed, summary.Summary.Committed, sum, n)
	}
	if t.Failed() {
		t.FailNow()
	}

	listed, err := adm.ListGroups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	lg, ok := listed[group]
	if !ok {
		t.Fatalf("ListGroups %v misses %s", listed.Groups(), group)
	}
	if lg.ProtocolType != "consumer" {
		t.Errorf("ListGroups: %s has protocol type %q, want consumer", group, lg.ProtocolType)
	}
	// The client left the group on close (LeaveGroup), rather than
	// timing out of it later.
	var last string
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		described, err := adm.DescribeGroups(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		dg := described[group]
		if dg.Err == nil && dg.State == "Empty" && len(dg.Members) == 0 {
			break
		}
		last = fmt.Sprintf("state %s, %d members, err %v", dg.State, len(dg.Members), dg.Err)
		if time.Now().After(deadline) {
			t.Fatalf("group %s after the client closed: %s; want Empty", group, last)
		}
	}
	assertGroupCaughtUp(ctx, t, adm, group, topic, partitions, n)
}

func pyTail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}
