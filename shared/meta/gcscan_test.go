package meta_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"testing"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
)

func TestReferencedObjectsScansAllPages(t *testing.T) {
	e := metatest.Start(t)
	ctx := context.Background()
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, nil)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer cache.Close()
	topic := &meta.Topic{Name: "d", Partitions: 3, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}

	// Nothing committed yet.
	refs, err := store.ReferencedObjects(ctx)
	if err != nil || len(refs) != 0 {
		t.Fatalf("empty store: %v %v", refs, err)
	}

	// 3 partitions x 450 ranges: more than two pages of the scan. Partition
	// p's range at offset o references object "p<p>-<o/2>" (two ranges per
	// object), except that the first range of every partition references
	// the one object "shared" (an object holds many partitions).
	want := map[string]struct{}{}
	const perPartition = 450
	for _, p := range cache.Partitions("d") {
		for from := int64(0); from < perPartition; from += 100 {
			var ranges []meta.Coords
			for o := from; o < from+100 && o < perPartition; o++ {
				obj := fmt.Sprintf("p%d-%d", p.Partition, o/2)
				if o == 0 {
					obj = "shared"
				}
				want[obj] = struct{}{}
				ranges = append(ranges, meta.Coords{Object: obj, BaseOffset: o, LastOffset: o, Length: 1})
			}
			c := meta.PartitionCommit{Topic: "d", TopicID: topic.ID, Partition: p.Partition, LeaderRevision: p.ModRevision, Ranges: ranges}
			if errs := store.Commit(ctx, []meta.PartitionCommit{c}); errs[0] != nil {
				t.Fatalf("commit %d-%d: %v", p.Partition, from, errs[0])
			}
		}
	}
	// Another cluster's manifests under another prefix are not ours.
	if _, err := e.Client.Put(ctx, "/other/manifests/x/00000/r/00000000000000000000", `{"object":"foreign"}`); err != nil {
		t.Fatal(err)
	}
	refs, err = store.ReferencedObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(refs, want) {
		t.Fatalf("got %d objects, want %d; missing %v, extra %v", len(refs), len(want), missingFrom(want, refs), missingFrom(refs, want))
	}

	// Retention drops partition 1's ranges below 10: their objects and
	// its reference to "shared" go (offset 1 is p1-0; offsets 2..9 are
	// p1-1..p1-4); "shared" stays referenced by partitions 0 and 2.
	p1, _ := cache.Partition("d", 1)
	if _, err := store.AdvanceLogStart(ctx, "d", topic.ID, 1, p1.ModRevision, 10); err != nil {
		t.Fatal(err)
	}
	for _, o := range []string{"p1-0", "p1-1", "p1-2", "p1-3", "p1-4"} {
		delete(want, o)
	}
	refs, err = store.ReferencedObjects(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(refs, want) {
		t.Fatalf("after retention: missing %v, extra %v", missingFrom(want, refs), missingFrom(refs, want))
	}

	// An entry that does not decode fails the scan: its object is unknown.
	bad := store.Prefix() + "manifests/" + topic.ID.String() + "/00002/r/99999999999999999999"
	if _, err := e.Client.Put(ctx, bad, "{not json"); err != nil {
		t.Fatal(err)
	}
	if refs, err := store.ReferencedObjects(ctx); err == nil {
		t.Fatalf("a corrupt entry was ignored: %d objects", len(refs))
	}
}

func missingFrom(a, b map[string]struct{}) []string {
	var out []string
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}
