package meta

import (
	"context"
	"errors"
	"testing"

	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

// A commit across a gap compares the log start it read; when a trim moved
// it meanwhile, the transaction fails, whyRefused says so (not fenced, not
// out of order), and Commit retries with a fresh read and succeeds.
func TestGapCommitRetriesWhenTheLogStartMoved(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	s := NewStore(e.Client, "")
	topic := &Topic{Name: "g", Partitions: 1, StorageMode: StorageDiskless}
	if _, err := s.CreateTopic(ctx, topic, []LogNode{{ID: "n1"}}); err != nil {
		t.Fatal(err)
	}
	resp, err := e.Client.Get(ctx, s.k.partition("g", 0))
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(resp, err)
	}
	leaderRev := resp.Kvs[0].ModRevision
	expected := int64(0)
	c := PartitionCommit{Topic: "g", TopicID: topic.ID, Partition: 0, LeaderRevision: leaderRev, ExpectedEnd: &expected,
		Ranges: []Coords{{Object: "o", Position: 8, Length: 10, BaseOffset: 50, LastOffset: 59}}}
	stale, err := s.readLogStart(ctx, topic.ID, 0) // no log start yet
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AdvanceLogStart(ctx, "g", topic.ID, 0, leaderRev, 20); err != nil { // a trim meanwhile
		t.Fatal(err)
	}
	cmps, ops, err := s.commitOps(c, stale)
	if err != nil {
		t.Fatal(err)
	}
	tx, err := e.Client.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil || tx.Succeeded {
		t.Fatalf("commit with a stale log start: %v %v", tx, err)
	}
	if err := s.whyRefused(ctx, c); !errors.Is(err, errLogStartMoved) {
		t.Fatalf("whyRefused: %v", err)
	}
	if errs := s.Commit(ctx, []PartitionCommit{c}); errs[0] != nil {
		t.Fatal(errs)
	}
	if start, err := s.LogStart(ctx, topic.ID, 0); err != nil || start != 50 {
		t.Fatalf("log start %d, %v", start, err)
	}
}
