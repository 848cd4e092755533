package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/streamline-dev/streamline/services/allinone"
	"github.com/streamline-dev/streamline/services/cluster"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
)

// TestTransactionsFranzGo runs franz-go's transactional producer against
// the all-in-one on a local topic: two committed transactions around an
// aborted one. A read_committed consumer sees exactly the committed
// records, once each; a read_uncommitted one sees every record; an open
// transaction holds the last stable offset back; a second producer with
// the same transactional id fences the first.
func TestTransactionsFranzGo(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	const topic = "txn-local"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.TransactionalID("e2e-txn"), kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(30*time.Second))

	const perTxn = 30
	runTxn := func(name string, commit bool) { t.Helper(); runTxn(ctx, t, prod, name, perTxn, commit) }
	runTxn("commit1", true)
	runTxn("abort2", false)
	runTxn("commit3", true)

	// Everything is decided: the read_committed end offsets are the log
	// ends (each partition ends with a marker).
	committedEnds, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committedEnds.Lookup(topic, o.Partition)
		if o.Err != nil || c.Err != nil || c.Offset != o.Offset {
			t.Errorf("partition %d: read_committed end %d (%v), end %d (%v): want equal with no transaction open", o.Partition, c.Offset, c.Err, o.Offset, o.Err)
		}
	})

	committed := readUntil(ctx, t, s.KafkaAddr(), topic, values(perTxn, "commit1", "commit3"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if len(committed) != 2*perTxn {
		t.Errorf("read_committed consumer read %d records, want %d", len(committed), 2*perTxn)
	}
	for _, name := range []string{"commit1", "commit3"} {
		for i := range perTxn {
			if v := fmt.Sprintf("%s-%d", name, i); committed[v] != 1 {
				t.Errorf("read_committed: %s read %d times, want once", v, committed[v])
			}
		}
	}
	for v := range committed {
		if strings.HasPrefix(v, "abort2-") {
			t.Errorf("read_committed consumer saw aborted record %s", v)
		}
	}
	uncommitted := readUntil(ctx, t, s.KafkaAddr(), topic, values(perTxn, "commit1", "abort2", "commit3"), kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if len(uncommitted) != 3*perTxn {
		t.Errorf("read_uncommitted consumer read %d records, want %d (aborted ones included)", len(uncommitted), 3*perTxn)
	}

	// An open transaction holds the last stable offset at its first record.
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	r, err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("open-0")}).First()
	if err != nil {
		t.Fatal(err)
	}
	lso, err := adm.ListCommittedOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := lso.Lookup(topic, r.Partition); o.Offset != r.Offset {
		t.Errorf("partition %d: read_committed end %d with a transaction open at %d, want %d", r.Partition, o.Offset, r.Offset, r.Offset)
	}

	// A second producer with the same id fences the first: its open
	// transaction is aborted and it can no longer produce or commit.
	prod2 := newClient(t, s.KafkaAddr(), kgo.TransactionalID("e2e-txn"), kgo.DefaultProduceTopic(topic))
	if err := prod2.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := prod2.ProduceSync(ctx, &kgo.Record{Value: []byte("second-0")}).FirstErr(); err != nil {
		t.Fatalf("second producer: %v", err)
	}
	if err := prod2.EndTransaction(ctx, kgo.TryCommit); err != nil {
		t.Fatalf("second producer commit: %v", err)
	}
	err = prod.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) {
		t.Errorf("fenced producer's commit: %v, want PRODUCER_FENCED or INVALID_PRODUCER_EPOCH", err)
	}
	committed = readUntil(ctx, t, s.KafkaAddr(), topic, []string{"second-0"}, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if committed["open-0"] != 0 || committed["second-0"] != 1 {
		t.Errorf("after fencing: the fenced producer's open-0 read %d times (want 0), second-0 %d (want 1)", committed["open-0"], committed["second-0"])
	}

	// KIP-890 part 1: a transactional batch is refused unless its
	// transaction is ongoing and holds the partition, so a late retry
	// cannot open a transaction nobody ends.
	described, err := adm.DescribeTransactions(ctx, "e2e-txn")
	if err != nil {
		t.Fatal(err)
	}
	d, ok := described["e2e-txn"]
	if !ok || d.Err != nil || d.State != "CompleteCommit" {
		t.Fatalf("DescribeTransactions: %+v (ok %v), want CompleteCommit", d, ok)
	}
	spec := recbatchtest.Values(time.Now().UnixMilli(), "late")
	spec.ProducerID, spec.ProducerEpoch, spec.BaseSequence, spec.Transactional = d.ProducerID, d.ProducerEpoch, 100, true
	req := kmsg.NewPtrProduceRequest()
	req.TransactionID, req.Acks, req.TimeoutMillis = kmsg.StringPtr("e2e-txn"), -1, 5000
	rt := kmsg.NewProduceRequestTopic()
	rt.Topic = topic
	rp := kmsg.NewProduceRequestTopicPartition()
	rp.Records = recbatchtest.Build(spec)
	rt.Partitions = append(rt.Partitions, rp)
	req.Topics = append(req.Topics, rt)
	// Produce v11: the classic protocol verifies, and refuses.
	v11 := kversion.Stable()
	v11.SetMaxKeyVersion(0, 11)
	raw := newClient(t, s.KafkaAddr(), kgo.MaxVersions(v11))
	resp, err := req.RequestWith(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	if code := resp.Topics[0].Partitions[0].ErrorCode; code != kerr.InvalidTxnState.Code {
		t.Errorf("transactional batch after the transaction ended (v11): error %v, want INVALID_TXN_STATE", kerr.ErrorForCode(code))
	}
	// Produce v12 (transaction version 2) would add the partition, but
	// the end bumped the epoch: a late batch of the ended transaction,
	// at the epoch before, is fenced.
	if d.ProducerEpoch < 1 {
		t.Fatalf("the producer's epoch is %d after a transaction version 2 commit, want it bumped", d.ProducerEpoch)
	}
	spec.ProducerEpoch = d.ProducerEpoch - 1
	rp.Records = recbatchtest.Build(spec)
	req.Topics[0].Partitions[0] = rp
	resp, err = req.RequestWith(ctx, newClient(t, s.KafkaAddr()))
	if err != nil {
		t.Fatal(err)
	}
	if v, code := resp.Version, resp.Topics[0].Partitions[0].ErrorCode; v < 12 || code != kerr.InvalidProducerEpoch.Code {
		t.Errorf("late batch at the epoch before the end (v%d): error %v, want INVALID_PRODUCER_EPOCH at v12+", v, kerr.ErrorForCode(code))
	}
}

// runTxn produces n records "<name>-<i>" in one transaction of prod and
// commits or aborts it.
func runTxn(ctx context.Context, t *testing.T, prod *kgo.Client, name string, n int, commit bool) {
	t.Helper()
	if err := prod.BeginTransaction(); err != nil {
		t.Fatalf("%s: begin: %v", name, err)
	}
	for i := range n {
		if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "%s-%d", name, i)}).FirstErr(); err != nil {
			t.Fatalf("%s: produce %d: %v", name, i, err)
		}
	}
	if err := prod.EndTransaction(ctx, kgo.TransactionEndTry(commit)); err != nil {
		t.Fatalf("%s: end (commit %v): %v", name, commit, err)
	}
}

// readUntil reads topic from the start until every value of expect was
// read, then polls for another second (a record past those, or a second
// copy, shows up by then: each partition is read in offset order), and
// counts each value read.
func readUntil(ctx context.Context, t *testing.T, addr, topic string, expect []string, opts ...kgo.Opt) map[string]int {
	t.Helper()
	cons := newClient(t, addr, append(opts, kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchMaxWait(200*time.Millisecond))...)
	seen := map[string]int{}
	missing := func() int {
		n := 0
		for _, v := range expect {
			if seen[v] == 0 {
				n++
			}
		}
		return n
	}
	deadline := time.Now().Add(30 * time.Second)
	var settle time.Time
	for {
		now := time.Now()
		if settle.IsZero() && missing() == 0 {
			settle = now.Add(time.Second)
		}
		if !settle.IsZero() && now.After(settle) {
			return seen
		}
		if now.After(deadline) {
			t.Fatalf("read %d values of %s; %d of the %d expected still missing after 30 s", len(seen), topic, missing(), len(expect))
		}
		pctx, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
		fs := cons.PollFetches(pctx)
		cancel()
		fs.EachError(func(tp string, p int32, err error) {
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("fetch %s/%d: %v", tp, p, err)
			}
		})
		fs.EachRecord(func(r *kgo.Record) { seen[string(r.Value)]++ })
	}
}

// values names the records of txns, perTxn each: "<txn>-<i>".
func values(perTxn int, txns ...string) []string {
	var out []string
	for _, name := range txns {
		for i := range perTxn {
			out = append(out, fmt.Sprintf("%s-%d", name, i))
		}
	}
	return out
}

// TestIdleTransactionalIDExpiresFranzGo: with --transactional-id-expiration
// short, a transactional id whose last transaction ended is forgotten:
// DescribeTransactions no longer finds it, the producer that used it gets
// INVALID_PRODUCER_ID_MAPPING (as from Kafka) and nothing it sends is
// read, and a producer that starts with the same id gets a new producer
// id and commits; what the first producer committed stays readable, once.
func TestIdleTransactionalIDExpiresFranzGo(t *testing.T) {
	s := cluster.StartAllInOne(t, func(c *allinone.Config) {
		c.TransactionalIDExpiration = time.Second
		c.TransactionAbortInterval = 100 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	const topic, id = "txn-expiry", "nightly-export"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 2, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	describe := func() kadm.DescribedTransaction {
		t.Helper()
		ds, err := adm.DescribeTransactions(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ds[id]
	}
	first := newClient(t, s.KafkaAddr(), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	runTxn(ctx, t, first, "run1", 10, true)
	before := describe()
	if before.Err != nil || before.State != "CompleteCommit" {
		t.Fatalf("after the first run: %+v", before)
	}

	deadline := time.Now().Add(30 * time.Second)
	for d := describe(); !errors.Is(d.Err, kerr.TransactionalIDNotFound); d = describe() {
		if time.Now().After(deadline) {
			t.Fatalf("the idle id was not forgotten within 30s: %+v", d)
		}
		time.Sleep(100 * time.Millisecond)
	}

	if err := first.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := first.ProduceSync(ctx, &kgo.Record{Value: []byte("late")}).FirstErr(); !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("the expired id's producer: %v, want INVALID_PRODUCER_ID_MAPPING", err)
	}
	first.Close()

	second := newClient(t, s.KafkaAddr(), kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	runTxn(ctx, t, second, "run2", 10, true)
	after := describe()
	if after.Err != nil || after.ProducerID == before.ProducerID {
		t.Fatalf("after expiry: %+v, want a new producer id (was %d)", after, before.ProducerID)
	}
	got := readUntil(ctx, t, s.KafkaAddr(), topic, values(10, "run1", "run2"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	for _, v := range values(10, "run1", "run2") {
		if got[v] != 1 {
			t.Errorf("%s read %d times, want once", v, got[v])
		}
	}
	if got["late"] != 0 {
		t.Errorf("the refused record was read %d times", got["late"])
	}
}
