package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestTransactionsDisklessAndHybrid runs franz-go's transactional producer
// against the all-in-one on a diskless and on a hybrid topic: a committed
// and an aborted transaction, then a transaction left open, then a restart
// of the all-in-one, so each partition rebuilds its transactions from what
// its engine stores (the diskless one from the manifest entries' events
// alone). After the restart the open transaction still holds the last
// stable offset and a read_committed consumer sees only the first
// committed transaction; a new producer with the same transactional id
// aborts the open one and commits a third. A read_committed consumer then
// sees exactly the two committed transactions, a read_uncommitted one
// every record.
func TestTransactionsDisklessAndHybrid(t *testing.T) {
	for _, mode := range []string{"diskless", "hybrid"} {
		t.Run(mode, func(t *testing.T) { txnModeRun(t, mode) })
	}
}

func txnModeRun(t *testing.T, mode string) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	s, restart := startRestartable(t, t.TempDir())
	topic := "txn-" + mode
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	const perTxn = 20
	txnID := "e2e-txn-" + mode
	runTxn := func(prod *kgo.Client, name string, commit bool) {
		t.Helper()
		runTxn(ctx, t, prod, name, perTxn, commit)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(time.Minute))
	runTxn(prod, "commit1", true)
	runTxn(prod, "abort2", false)
	if err := prod.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	open, err := prod.ProduceSync(ctx, &kgo.Record{Value: []byte("open-0")}).First()
	if err != nil {
		t.Fatal(err)
	}

	s = restart(nil)
	adm = kadm.NewClient(newClient(t, s.KafkaAddr()))
	lso := func() kadm.ListedOffsets {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			o, err := adm.ListCommittedOffsets(ctx, topic)
			if err == nil && o.Error() == nil {
				return o
			}
			if time.Now().After(deadline) {
				t.Fatalf("list committed offsets after the restart: %v %v", err, o.Error())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	// The open transaction, rebuilt at open, holds the LSO at its first
	// record.
	if o, _ := lso().Lookup(topic, open.Partition); o.Offset != open.Offset {
		t.Errorf("after the restart: LSO of partition %d is %d, want %d (the open transaction's first offset)", open.Partition, o.Offset, open.Offset)
	}
	check := func(stage string, got map[string]int, names ...string) {
		t.Helper()
		if len(got) != len(names)*perTxn {
			t.Errorf("%s: read %d distinct records, want %d", stage, len(got), len(names)*perTxn)
		}
		for _, v := range values(perTxn, names...) {
			if got[v] != 1 {
				t.Errorf("%s: %s read %d times, want once", stage, v, got[v])
			}
		}
		for v := range got {
			if strings.HasPrefix(v, "abort2-") || strings.HasPrefix(v, "open-") {
				t.Errorf("%s: read %s, of an aborted or open transaction", stage, v)
			}
		}
	}
	check("read_committed after the restart", readUntil(ctx, t, s.KafkaAddr(), topic, values(perTxn, "commit1"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())), "commit1")

	// A new producer of the same transactional id aborts the open
	// transaction (its InitProducerID), then commits.
	prod2 := newClient(t, s.KafkaAddr(), kgo.TransactionalID(txnID), kgo.DefaultProduceTopic(topic),
		kgo.TransactionTimeout(time.Minute))
	runTxn(prod2, "commit3", true)
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	committedEnds := lso()
	ends.Each(func(o kadm.ListedOffset) {
		c, _ := committedEnds.Lookup(topic, o.Partition)
		if o.Err != nil || c.Offset != o.Offset {
			t.Errorf("partition %d: read_committed end %d, end %d (%v): want equal with no transaction open", o.Partition, c.Offset, o.Offset, o.Err)
		}
	})
	check("read_committed", readUntil(ctx, t, s.KafkaAddr(), topic, values(perTxn, "commit1", "commit3"),
		kgo.FetchIsolationLevel(kgo.ReadCommitted())), "commit1", "commit3")
	all := readUntil(ctx, t, s.KafkaAddr(), topic, append(values(perTxn, "commit1", "abort2", "commit3"), "open-0"),
		kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
	if len(all) != 3*perTxn+1 {
		t.Errorf("read_uncommitted consumer read %d records, want %d (aborted ones included)", len(all), 3*perTxn+1)
	}
}
