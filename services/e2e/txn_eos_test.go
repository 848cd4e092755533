package e2e

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kversion"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestTransactionsExactlyOnceFranzGo runs franz-go's GroupTransactSession
// (consume-transform-produce: AddOffsetsToTxn, TxnOffsetCommit, EndTxn)
// on the all-in-one: every record of an input topic is copied to an
// output topic inside transactions that also commit the group's offsets,
// and the session is closed and started again midway (same transactional
// id and group), so the second session resumes from the offsets the
// first committed in its transactions (fetched with RequireStable). A
// read_committed consumer of the output sees every input value exactly
// once, and the group's committed offsets are the input's end offsets.
//
// It runs under both transaction versions: franz-go uses version 2
// (KIP-890 part 2: no AddPartitionsToTxn or AddOffsetsToTxn, an epoch
// bump per transaction) as the all-in-one advertises it, and version 1
// when its EndTxn is capped below v5.
func TestTransactionsExactlyOnceFranzGo(t *testing.T) {
	t.Run("version2", func(t *testing.T) { exactlyOnceFranzGo(t, true) })
	t.Run("version1", func(t *testing.T) {
		v1 := kversion.Stable()
		v1.SetMaxKeyVersion(26, 4) // EndTxn v4: franz-go stays on the classic protocol
		exactlyOnceFranzGo(t, false, kgo.MaxVersions(v1))
	})
}

func exactlyOnceFranzGo(t *testing.T, version2 bool, sessionOpts ...kgo.Opt) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	const (
		in, out, group = "eos-in", "eos-out", "eos"
		n              = 2000
	)
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	for _, topic := range []string{in, out} {
		if resp, err := adm.CreateTopic(ctx, 3, 1, nil, topic); err != nil || resp.Err != nil {
			t.Fatalf("create topic %s: %v %v", topic, err, resp.Err)
		}
	}
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(in))
	want := make([]string, n)
	recs := make([]*kgo.Record, n)
	for i := range n {
		want[i] = fmt.Sprintf("v-%04d", i)
		recs[i] = &kgo.Record{Key: fmt.Appendf(nil, "k%d", i%7), Value: []byte(want[i])}
	}
	for i := 0; i < n; i += 50 { // many small batches: many transactions
		if err := prod.ProduceSync(ctx, recs[i:i+50]...).FirstErr(); err != nil {
			t.Fatalf("produce input: %v", err)
		}
	}

	// copyRecords runs one session until it has copied at least until
	// records (counted across sessions in copied) or the input is done.
	copied := 0
	copyRecords := func(until int) {
		t.Helper()
		sess, err := kgo.NewGroupTransactSession(append([]kgo.Opt{
			kgo.SeedBrokers(s.KafkaAddr()),
			kgo.TransactionalID("eos-copier"),
			kgo.TransactionTimeout(30 * time.Second),
			kgo.DefaultProduceTopic(out),
			kgo.ConsumerGroup(group),
			kgo.ConsumeTopics(in),
			kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
			kgo.FetchIsolationLevel(kgo.ReadCommitted()),
			kgo.RequireStableFetchOffsets(),
			kgo.FetchMaxWait(200 * time.Millisecond),
		}, sessionOpts...)...)
		if err != nil {
			t.Fatal(err)
		}
		defer sess.Close()
		idle := time.Now()
		for copied < until {
			if time.Since(idle) > 30*time.Second {
				t.Fatalf("no progress for 30 s after %d records", copied)
			}
			pctx, pcancel := context.WithTimeout(ctx, time.Second)
			fs := sess.PollRecords(pctx, 100)
			pcancel()
			fs.EachError(func(tp string, p int32, err error) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("fetch %s/%d: %v", tp, p, err)
				}
			})
			if fs.NumRecords() == 0 {
				continue
			}
			if err := sess.Begin(); err != nil {
				t.Fatalf("begin: %v", err)
			}
			var batch []*kgo.Record
			fs.EachRecord(func(r *kgo.Record) {
				batch = append(batch, &kgo.Record{Key: r.Key, Value: r.Value})
			})
			perr := sess.ProduceSync(ctx, batch...).FirstErr()
			committed, err := sess.End(ctx, kgo.TransactionEndTry(perr == nil))
			switch {
			case err != nil:
				t.Fatalf("end: %v", err)
			case perr != nil:
				t.Logf("produce failed (%v); the transaction was aborted and the records will be fetched again", perr)
			case committed:
				copied += len(batch)
				idle = time.Now()
			default:
				t.Logf("transaction of %d records aborted (a rebalance); they will be fetched again", len(batch))
			}
		}
	}
	copyRecords(n / 2)
	if copied >= n {
		t.Fatalf("the first session copied all %d records in one go; the test wants a restart midway", copied)
	}
	t.Logf("first session copied %d records; restarting", copied)
	copyRecords(n)
	if copied != n {
		t.Fatalf("copied %d records in committed transactions, want %d: the resumed session did not start from the committed offsets", copied, n)
	}

	// The version the client ran shows in the epoch: version 2 bumps it
	// at every end (at least n/100 transactions), version 1 only at each
	// session's InitProducerId.
	d, err := adm.DescribeTransactions(ctx, "eos-copier")
	if err != nil || d["eos-copier"].Err != nil {
		t.Fatalf("describe eos-copier: %v %+v", err, d)
	}
	if epoch := d["eos-copier"].ProducerEpoch; version2 != (epoch >= n/100) {
		t.Fatalf("producer epoch %d after the run: transaction version 2 used = %v, want %v", epoch, epoch >= n/100, version2)
	}

	seen := readUntil(ctx, t, s.KafkaAddr(), out, want, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if len(seen) != n {
		t.Fatalf("output holds %d distinct values, want %d", len(seen), n)
	}
	for _, v := range want {
		if seen[v] != 1 {
			t.Fatalf("value %s read %d times from the output, want exactly once", v, seen[v])
		}
	}

	ends, err := adm.ListEndOffsets(ctx, in)
	if err != nil {
		t.Fatal(err)
	}
	// The last transaction's offsets may still be being applied by the
	// group's coordinator: wait for them (bounded).
	deadline := time.Now().Add(15 * time.Second)
	for {
		offs, err := adm.FetchOffsets(ctx, group)
		if err != nil {
			t.Fatal(err)
		}
		var diff []string
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := offs.Lookup(in, o.Partition)
			if !ok || c.Err != nil || c.At != o.Offset {
				diff = append(diff, fmt.Sprintf("partition %d: committed %d (%v), end %d", o.Partition, c.At, c.Err, o.Offset))
			}
		})
		if len(diff) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("group offsets are not the input's end offsets: %v", diff)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
