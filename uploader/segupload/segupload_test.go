package segupload_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore/objstores3"
	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/segobject"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
	"github.com/streamline-dev/streamline/uploader/segupload"
)

var part = segupload.Partition{NodeID: "n1", Topic: "h", TopicID: meta.TopicID{1, 2, 3}, Partition: 4}

// A segment larger than the S3 multipart threshold goes up in parts from
// the spool file; the object is a valid segment holding the batches byte
// for byte, and the entry keeps only each producer's last batches even
// though thousands went by (they are cut down as they come).
func TestLargeSegmentOverS3Multipart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o := objstores3.Options{Bucket: objstoretest.BucketName, Endpoint: objstoretest.StartGofakes3(t), Region: "us-east-1", PathStyle: true,
		AccessKeyID: "any", SecretAccessKey: "any", MultipartThreshold: objstores3.MinPartSize, PartSize: objstores3.MinPartSize}
	bucket, err := objstores3.New(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()

	spool := t.TempDir()
	up, err := segupload.New(spool, part)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	// The spool file has no name while the upload runs: a process killed
	// now leaves nothing in the directory.
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("spool directory holds %v during the upload", left)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	var all []byte
	var msg []byte
	seq := map[int64]int32{}
	var want []meta.ProducerBatch
	next := int64(5000)
	for i := range 3000 {
		pid := int64(i % 3) // producers 0, 1 and 2 (0 is a valid id)
		spec := recbatchtest.Spec{BaseOffset: next, BaseTimestamp: 1e12 + int64(i), ProducerID: pid, BaseSequence: seq[pid]}
		for range 1 + rng.IntN(3) {
			spec.Records = append(spec.Records, kmsg.Record{Value: bytes.Repeat([]byte{byte(i)}, 1000+rng.IntN(2000))})
		}
		b := recbatchtest.Build(spec)
		recbatch.SetPartitionLeaderEpoch(b, 9)
		h, _ := recbatch.ParseHeader(b)
		want = append(want, meta.ProducerBatch{ProducerID: pid, FirstSeq: seq[pid], LastSeq: h.LastSequence(), BaseOffset: next, LastOffset: h.LastOffset()})
		seq[pid] += int32(len(spec.Records))
		next = h.NextOffset()
		all, msg = append(all, b...), append(msg, b...)
		if len(msg) > 256<<10 {
			if err := up.Add(msg); err != nil {
				t.Fatal(err)
			}
			msg = nil
		}
	}
	if err := up.Add(msg); err != nil {
		t.Fatal(err)
	}
	if len(all) < 2*objstores3.MinPartSize {
		t.Fatalf("only %d bytes: not several parts", len(all))
	}
	key, c, err := up.Put(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := objectfmt.KeyTime(key); !ok || c.Object != key {
		t.Fatalf("key %q (coords %q) is not an objectfmt key", key, c.Object)
	}
	if c.BaseOffset != 5000 || c.LastOffset != next-1 || c.Position != segobject.HeaderSize || c.Length != int64(len(all)) ||
		c.LeaderEpoch != 9 || len(c.Epochs) != 0 || c.Segment == nil {
		t.Fatalf("coords %+v", c)
	}
	if got, w := fmt.Sprint(c.Producers), fmt.Sprint(want[len(want)-3*meta.ProducerWindow:]); got != w {
		t.Fatalf("producers\n got %s\nwant %s", got, w)
	}
	obj, err := bucket.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	checkObject(t, obj, c, all)
	if err := up.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(spool); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

// checkObject verifies a whole segment object against its coordinates and
// the batches it must hold.
func checkObject(t *testing.T, obj []byte, c meta.Coords, batches []byte) {
	t.Helper()
	ipos, ilen, err := segobject.ReadFooter(obj[len(obj)-segobject.FooterSize:], int64(len(obj)))
	if err != nil || ipos != c.Segment.IndexPos || ilen != c.Segment.IndexLen || ipos != c.Position+c.Length {
		t.Fatalf("footer: index at %d+%d, %v; coords %+v", ipos, ilen, err, c)
	}
	ix, err := segobject.ParseIndex(obj[ipos:ipos+ilen], ipos, c.LastOffset)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(obj[c.Position:c.Position+c.Length], batches) {
		t.Fatal("object data differs from the batches sent")
	}
	for o := c.BaseOffset; o <= c.LastOffset; o += 97 {
		blk, ok := ix.Find(o)
		if !ok {
			t.Fatalf("offset %d not found", o)
		}
		if err := segobject.Verify(obj[blk.Pos:blk.End], blk.BaseOffset, c.LastOffset); err != nil {
			t.Fatalf("offset %d: %v", o, err)
		}
	}
}

// Bad input fails the upload (and every later call) with ErrInvalid;
// Close removes the spool file.
func TestInvalidInput(t *testing.T) {
	batch := func(base int64) []byte {
		s := recbatchtest.Values(1, "a", "b")
		s.BaseOffset = base
		return recbatchtest.Build(s)
	}
	corrupt := batch(2)
	corrupt[len(corrupt)-1] ^= 0xff
	magic1 := batch(2)
	magic1[16] = 1
	for name, second := range map[string][]byte{
		"gap":        batch(3),
		"overlap":    batch(1),
		"crc":        corrupt,
		"magic":      magic1,
		"split":      batch(2)[:30],
		"split tail": append(batch(2), batch(4)[:70]...),
	} {
		t.Run(name, func(t *testing.T) {
			spool := t.TempDir()
			up, err := segupload.New(spool, part)
			if err != nil {
				t.Fatal(err)
			}
			if err := up.Add(batch(0)); err != nil {
				t.Fatal(err)
			}
			if err := up.Add(second); !errors.Is(err, segupload.ErrInvalid) {
				t.Fatalf("Add: %v", err)
			}
			if err := up.Add(batch(2)); !errors.Is(err, segupload.ErrInvalid) {
				t.Fatalf("Add after a failure: %v", err)
			}
			if _, _, err := up.Put(context.Background(), nil); !errors.Is(err, segupload.ErrInvalid) {
				t.Fatalf("Put after a failure: %v", err)
			}
			if err := up.Close(); err != nil {
				t.Fatal(err)
			}
			if left, _ := os.ReadDir(spool); len(left) != 0 {
				t.Fatalf("spool files left: %v", left)
			}
		})
	}
	up, err := segupload.New(t.TempDir(), part)
	if err != nil {
		t.Fatal(err)
	}
	defer up.Close()
	if err := up.Add(nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := up.Put(context.Background(), nil); !errors.Is(err, segupload.ErrInvalid) {
		t.Fatalf("Put of no batches: %v", err)
	}
	for _, p := range []segupload.Partition{
		{Topic: "h", TopicID: part.TopicID},
		{NodeID: "a/b", Topic: "h", TopicID: part.TopicID},
		{NodeID: ".n", Topic: "h", TopicID: part.TopicID},
		{NodeID: "n", Topic: "h"},
		{NodeID: "n", TopicID: part.TopicID},
		{NodeID: "n", Topic: "h", TopicID: part.TopicID, Partition: -1},
	} {
		if _, err := segupload.New(t.TempDir(), p); !errors.Is(err, segupload.ErrInvalid) {
			t.Errorf("New(%+v): %v", p, err)
		}
	}
}
