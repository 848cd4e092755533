package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestTransactionsKcatAndConfluentKafka: librdkafka's transactional
// producer through kcat (-X transactional.id: every line in one
// transaction, committed at the end) and through confluent-kafka (an
// aborted then a committed transaction, read back by its own
// read_committed consumer), on a local and on a diskless topic. A
// read_committed franz-go consumer then sees exactly the committed
// records, once each.
func TestTransactionsKcatAndConfluentKafka(t *testing.T) {
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is not installed (apt-get install kcat); .ci/run installs it")
	}
	if out, err := exec.Command(systemPython, "-c", "import confluent_kafka").CombinedOutput(); err != nil {
		t.Fatalf("%s cannot import confluent_kafka: apt-get install python3-confluent-kafka (%v)\n%s", systemPython, err, out)
	}
	s := cluster.StartAllInOne(t)
	for _, mode := range []string{"local", "diskless"} {
		t.Run(mode, func(t *testing.T) { librdkafkaTxns(t, s.KafkaAddr(), mode) })
	}
}

func librdkafkaTxns(t *testing.T, addr, mode string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const n = 200
	topic := "txn-clients-" + mode
	adm := kadm.NewClient(newClient(t, addr))
	if resp, err := adm.CreateTopic(ctx, 3, 1, map[string]*string{"storage.mode": kadm.StringPtr(mode)}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}

	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, "kcat-%d\n", i)
	}
	kc := exec.CommandContext(ctx, "kcat", "-P", "-b", addr, "-t", topic,
		"-X", "transactional.id=kcat-"+topic, "-X", "enable.idempotence=true")
	kc.Stdin = strings.NewReader(lines.String())
	if out, err := kc.CombinedOutput(); err != nil {
		t.Fatalf("kcat transactional produce: %v\n%s", err, out)
	}

	var stdout, stderr bytes.Buffer
	py := exec.CommandContext(ctx, systemPython, "testdata/txn_confluent_kafka.py", addr, topic, strconv.Itoa(n), "60")
	py.Stdout, py.Stderr = &stdout, &stderr
	if err := py.Run(); err != nil {
		t.Fatalf("confluent-kafka: %v\nstderr:\n%s\nstdout (tail):\n%s", err, stderr.String(), pyTail(stdout.String(), 2000))
	}
	pySeen := map[string]int{}
	consumed := -1
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var l struct {
			V       *string `json:"v"`
			Summary *struct {
				Consumed int `json:"consumed"`
			} `json:"summary"`
		}
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("confluent-kafka output %q: %v", sc.Text(), err)
		}
		switch {
		case l.V != nil:
			pySeen[*l.V]++
		case l.Summary != nil:
			consumed = l.Summary.Consumed
		}
	}
	// The Python reader sees the kcat transaction and its own committed one.
	checkCommittedOnly(t, "confluent-kafka read_committed consumer", pySeen, n, "kcat", "py-commit")
	if consumed != 2*n {
		t.Errorf("confluent-kafka read_committed consumer: %d records, want %d", consumed, 2*n)
	}

	seen := readUntil(ctx, t, addr, topic, values(n, "kcat", "py-commit"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	checkCommittedOnly(t, "franz-go read_committed consumer", seen, n, "kcat", "py-commit")
}

// checkCommittedOnly: seen holds each record of the committed
// transactions (n records each) exactly once, and nothing else.
func checkCommittedOnly(t *testing.T, who string, seen map[string]int, n int, committed ...string) {
	t.Helper()
	want := map[string]bool{}
	for _, v := range values(n, committed...) {
		want[v] = true
		if seen[v] != 1 {
			t.Errorf("%s: %s read %d times, want once", who, v, seen[v])
		}
	}
	for v, c := range seen {
		if !want[v] {
			t.Errorf("%s: read %s (%d times), which no committed transaction wrote", who, v, c)
		}
	}
}
