package chaos

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The exactly-once pipeline: a franz-go GroupTransactSession consumes the
// input topic (a data topic, produced and checked like the others)
// read_committed as its group, and writes each record's value, prefixed
// with eosPrefix, to the same partition of the output topic, one
// transaction per poll that also commits the group's offsets
// (AddOffsetsToTxn, TxnOffsetCommit, EndTxn). It runs through every fault;
// End may fail or abort (the session then rewinds to the committed
// offsets, or is replaced by a new one with the same transactional id,
// which fences the old), and only the checker's reading of the output
// decides.
const (
	eosTxnID  = "chaos-eos"
	eosPrefix = "eos:"
)

// pipeline runs sessions until the workload stops; the transaction under
// way then ends (commit, as any other) before the session closes, so
// nothing is left open for the final read.
func (w *workload) pipeline(d dataTopic) {
	defer w.wg.Done()
	for w.ctx.Err() == nil {
		err := w.session(d)
		if err != nil {
			w.h.eosEvent(func(s *eosStats) { s.lastErr = err.Error() })
		}
		if w.ctx.Err() == nil {
			time.Sleep(500 * time.Millisecond)
		}
	}
}

// session runs one GroupTransactSession until the workload stops or an
// error leaves it unusable (End's errors are not retryable).
func (w *workload) session(d dataTopic) error {
	sess, err := kgo.NewGroupTransactSession(
		kgo.SeedBrokers(w.seeds...),
		kgo.MetadataMinAge(250*time.Millisecond),
		kgo.RetryBackoffFn(func(int) time.Duration { return 100 * time.Millisecond }),
		kgo.TransactionalID(eosTxnID),
		kgo.TransactionTimeout(20*time.Second),
		kgo.RecordPartitioner(kgo.ManualPartitioner()),
		kgo.ConsumerGroup(d.group),
		kgo.ConsumeTopics(d.name),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.FetchMaxWait(500*time.Millisecond),
		kgo.SessionTimeout(10*time.Second),
		kgo.ClientID(d.group),
	)
	if err != nil {
		w.h.eosEvent(func(s *eosStats) { s.failed++ })
		return err
	}
	defer sess.Close()
	w.h.eosEvent(func(s *eosStats) { s.sessions++ })
	for w.ctx.Err() == nil {
		fs := sess.PollRecords(w.ctx, 500)
		recs := fs.Records()
		if len(recs) == 0 {
			continue
		}
		if err := sess.Begin(); err != nil {
			w.h.eosEvent(func(s *eosStats) { s.failed++ })
			return fmt.Errorf("begin: %w", err)
		}
		out := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			w.h.consume(d.group, string(r.Value))
			out[i] = &kgo.Record{Topic: d.eosOut, Partition: r.Partition, Value: []byte(eosPrefix + string(r.Value))}
		}
		w.h.eosEvent(func(s *eosStats) { s.consumed += len(recs) })
		// Not w.ctx: a stop lets the transaction under way end.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		perr := sess.ProduceSync(ctx, out...).FirstErr()
		committed, err := sess.End(ctx, kgo.TransactionEndTry(perr == nil))
		cancel()
		w.h.eosEvent(func(s *eosStats) {
			if perr != nil {
				s.produceErrors++
				s.lastErr = "produce: " + perr.Error()
			}
			switch {
			case err != nil:
				s.endErrors++
			case committed:
				s.committed++
			default:
				s.aborted++
			}
		})
		if err != nil {
			return fmt.Errorf("end: %w", err)
		}
	}
	return nil
}

// stableCommits reads group's committed offsets with RequireStable (as an
// exactly-once consumer does), retrying while an offset is
// UNSTABLE_OFFSET_COMMIT (a transaction's offsets not yet applied), for up
// to within.
func stableCommits(a *kadm.Client, group string, within time.Duration) (map[tp]int64, error) {
	deadline := time.Now().Add(within)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		resp, err := a.FetchOffsets(kadm.RequireStable(ctx), group)
		cancel()
		out := map[tp]int64{}
		if err == nil {
			resp.Each(func(o kadm.OffsetResponse) {
				switch {
				case o.Err != nil:
					err = fmt.Errorf("%s/%d: %w", o.Topic, o.Partition, o.Err)
				case o.At >= 0:
					out[tp{o.Topic, o.Partition}] = o.At
				}
			})
		}
		if err == nil {
			return out, nil
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("group %s: committed offsets not stable %v after the pipeline stopped: %w", group, within, err)
		}
		time.Sleep(250 * time.Millisecond) // UNSTABLE_OFFSET_COMMIT, or the coordinator moving
	}
}

// readCommitted reads every partition of topic from its log start to its
// end with read_committed, once its last stable offset reached its high
// watermark (every transaction ended: the pipeline stopped, and an open
// transaction it left is aborted by the coordinator after its timeout),
// waiting up to within for that. It returns the data records' values per
// partition and offset (control records and aborted transactions' records
// are not there).
func readCommitted(ctx context.Context, seeds []string, topic string, within time.Duration) (map[tp]map[int64]string, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(seeds...), kgo.FetchMaxWait(200*time.Millisecond),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()), kgo.KeepControlRecords())
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	a := kadm.NewClient(cl)
	deadline := time.Now().Add(within)
	var starts, ends kadm.ListedOffsets
	for {
		var lso kadm.ListedOffsets
		starts, err = a.ListStartOffsets(ctx, topic)
		if err == nil {
			err = starts.Error()
		}
		if err == nil {
			ends, err = a.ListEndOffsets(ctx, topic)
		}
		if err == nil {
			err = ends.Error()
		}
		if err == nil {
			lso, err = a.ListCommittedOffsets(ctx, topic)
		}
		if err == nil {
			err = lso.Error()
		}
		if err == nil {
			ends.Each(func(o kadm.ListedOffset) {
				if l, ok := lso.Lookup(o.Topic, o.Partition); !ok || l.Offset != o.Offset {
					err = fmt.Errorf("%s/%d: last stable offset %d, high watermark %d: a transaction is still open", o.Topic, o.Partition, l.Offset, o.Offset)
				}
			})
		}
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%v after the pipeline stopped: %w", within, err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	stored := map[tp]map[int64]string{}
	want := map[tp]int64{} // the offset of each partition's last record
	consume := map[string]map[int32]kgo.Offset{topic: {}}
	starts.Each(func(o kadm.ListedOffset) {
		p := tp{o.Topic, o.Partition}
		stored[p] = map[int64]string{}
		if end, _ := ends.Lookup(o.Topic, o.Partition); end.Offset > o.Offset {
			want[p] = end.Offset - 1
			consume[topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		}
	})
	if len(want) == 0 {
		return stored, nil
	}
	cl.AddConsumePartitions(consume)
	// With control records kept, each partition's last offset is a record
	// read_committed returns: a marker, or a non-transactional record.
	reached := map[tp]bool{}
	const stallAfter = time.Minute
	for len(reached) < len(want) {
		pctx, cancel := context.WithTimeout(ctx, stallAfter)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil || (pctx.Err() != nil && fs.NumRecords() == 0) {
			return nil, fmt.Errorf("reading %s back: no record for %v (%d of %d partitions read to their end)", topic, stallAfter, len(reached), len(want))
		}
		fs.EachRecord(func(r *kgo.Record) {
			p := tp{r.Topic, r.Partition}
			last, ok := want[p]
			if !ok || r.Offset > last {
				return
			}
			if r.Offset == last {
				reached[p] = true
			}
			if r.Attrs.IsControl() {
				return
			}
			if prev, dup := stored[p][r.Offset]; dup && prev != string(r.Value) {
				stored[p][r.Offset] = prev + "|" + string(r.Value)
				return
			}
			stored[p][r.Offset] = string(r.Value)
		})
	}
	return stored, nil
}
