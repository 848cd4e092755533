package uploadrpc

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kmsg"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/meta/metatest"
	"github.com/streamline-dev/streamline/shared/objstore/objstorefs"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/recbatch/recbatchtest"
	"github.com/streamline-dev/streamline/shared/rpc"
	"github.com/streamline-dev/streamline/shared/segobject"
	"github.com/streamline-dev/streamline/uploader/merge"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// segEnv is a real etcd with one topic, a real directory bucket and an
// UploadService served over gRPC on loopback.
type segEnv struct {
	t      *testing.T
	ctx    context.Context
	store  *meta.Store
	topic  *meta.Topic
	part   meta.Partition
	bucket *objstorefs.Bucket
	spool  string
	srv    *Server
	client uploadv1.UploadServiceClient
	stored []meta.Coords // OnSegmentUploaded calls
}

func newSegEnv(t *testing.T, withObjects bool) *segEnv {
	t.Helper()
	e := metatest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	store := meta.NewStore(e.Client, "")
	cache := meta.NewCache(store, quiet)
	if err := cache.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cache.Close)
	topic := &meta.Topic{Name: "h", Partitions: 1, StorageMode: meta.StorageDiskless}
	rev, err := store.CreateTopic(ctx, topic, []meta.LogNode{{ID: "n1"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := cache.WaitRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	part, _ := cache.Partition("h", 0)
	bucket, err := objstorefs.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	en := &segEnv{t: t, ctx: ctx, store: store, topic: topic, part: part, bucket: bucket, spool: t.TempDir()}
	if withObjects {
		en.srv = NewServer(bucket, store)
	} else {
		en.srv = NewServer(nil, store)
	}
	en.srv.RefuseCommitsOlderThan(5 * time.Minute)
	en.srv.SpoolSegmentsIn(en.spool)
	en.srv.OnSegmentUploaded(func(c meta.Coords) { en.stored = append(en.stored, c) })
	gs := grpc.NewServer(rpc.ServerOptions()...)
	uploadv1.RegisterUploadServiceServer(gs, en.srv)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go gs.Serve(lis)
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), rpc.DialOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	en.client = uploadv1.NewUploadServiceClient(conn)
	return en
}

// segment is what a test sends and expects back.
type segment struct {
	batches   [][]byte
	data      []byte
	base      int64
	last      int64
	maxTS     int64
	epochs    []meta.EpochStart
	producers map[int64][]meta.ProducerBatch // all idempotent batches per producer
}

// build makes n batches from offset base: leader epochs change at a
// third and two thirds (epochs[0] first), producers 7 and 8 alternate and
// every fifth batch has no producer, timestamps are not monotonic.
func build(rng *rand.Rand, base int64, n int, epochs [3]int32) segment {
	s := segment{base: base, maxTS: -1, producers: map[int64][]meta.ProducerBatch{}}
	seq := map[int64]int32{}
	next := base
	for i := range n {
		epoch := epochs[i*3/n]
		spec := recbatchtest.Spec{BaseOffset: next, BaseTimestamp: 1_700_000_000_000 + int64(rng.IntN(100_000)), ProducerID: -1, ProducerEpoch: -1, BaseSequence: -1}
		pid := int64(7 + i%2)
		if i%5 != 0 {
			spec.ProducerID, spec.ProducerEpoch, spec.BaseSequence = pid, 2, seq[pid]
		}
		for range 1 + rng.IntN(4) {
			spec.Records = append(spec.Records, kmsg.Record{Key: []byte("k"), Value: bytes.Repeat([]byte{'v'}, rng.IntN(300))})
		}
		b := recbatchtest.Build(spec)
		recbatch.SetPartitionLeaderEpoch(b, epoch)
		h, err := recbatch.Validate(b)
		if err != nil {
			panic(err)
		}
		if i == 0 {
			s.epochs = append(s.epochs, meta.EpochStart{Epoch: epoch, Start: next})
		} else if epoch != s.epochs[len(s.epochs)-1].Epoch {
			s.epochs = append(s.epochs, meta.EpochStart{Epoch: epoch, Start: next})
		}
		if h.Idempotent() {
			s.producers[pid] = append(s.producers[pid], meta.ProducerBatch{ProducerID: pid, Epoch: 2, FirstSeq: seq[pid], LastSeq: h.LastSequence(),
				BaseOffset: next, LastOffset: h.LastOffset()})
			seq[pid] += int32(len(spec.Records))
		}
		s.maxTS = max(s.maxTS, h.MaxTimestamp)
		s.batches = append(s.batches, b)
		s.data = append(s.data, b...)
		next = h.NextOffset()
	}
	s.last = next - 1
	return s
}

// wantProducers is each producer's last ProducerWindow batches, in offset
// order.
func (s segment) wantProducers() []meta.ProducerBatch {
	var out []meta.ProducerBatch
	for _, bs := range s.producers {
		out = append(out, bs[max(0, len(bs)-meta.ProducerWindow):]...)
	}
	// Producers alternate, so offset order interleaves them.
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && out[j].BaseOffset < out[j-1].BaseOffset; j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

// messages splits the segment's batches over messages of 0 to 20
// batches; the first names the partition and carries none.
func (en *segEnv) messages(rng *rand.Rand, s segment) []*uploadv1.UploadSegmentRequest {
	msgs := []*uploadv1.UploadSegmentRequest{{NodeId: "n1", Topic: "h", TopicId: en.topic.ID[:], Partition: 0}}
	for i := 0; i < len(s.batches); {
		n := min(rng.IntN(21), len(s.batches)-i)
		m := &uploadv1.UploadSegmentRequest{}
		for _, b := range s.batches[i : i+n] {
			m.Batches = append(m.Batches, b...)
		}
		msgs = append(msgs, m)
		i += n
	}
	return msgs
}

// send streams msgs and returns the response.
func (en *segEnv) send(msgs []*uploadv1.UploadSegmentRequest) (*uploadv1.UploadSegmentResponse, error) {
	st, err := en.client.UploadSegment(en.ctx)
	if err != nil {
		return nil, err
	}
	for _, m := range msgs {
		if err := st.Send(m); err == io.EOF {
			break // the server answered early: CloseAndRecv has its status
		} else if err != nil {
			return nil, err
		}
	}
	return st.CloseAndRecv()
}

// upload streams s and checks the object and coordinates.
func (en *segEnv) upload(rng *rand.Rand, s segment) *uploadv1.Coords {
	en.t.Helper()
	resp, err := en.send(en.messages(rng, s))
	if err != nil {
		en.t.Fatal(err)
	}
	c := CoordsFromProto(resp.GetCoords())
	if _, ok := objectfmt.KeyTime(resp.GetObjectKey()); !ok || c.Object != resp.GetObjectKey() {
		en.t.Fatalf("key %q, coords object %q: not an objectfmt key", resp.GetObjectKey(), c.Object)
	}
	want := meta.Coords{Object: c.Object, Position: segobject.HeaderSize, Length: int64(len(s.data)), BaseOffset: s.base, LastOffset: s.last,
		MaxTimestamp: s.maxTS, LeaderEpoch: s.epochs[0].Epoch, Producers: s.wantProducers(), Segment: c.Segment}
	if len(s.epochs) > 1 {
		want.Epochs = s.epochs[1:]
	}
	if c.Segment == nil || !reflect.DeepEqual(c, want) {
		en.t.Fatalf("coords\n got %+v\nwant %+v", c, want)
	}
	obj, err := en.bucket.Get(en.ctx, c.Object)
	if err != nil {
		en.t.Fatal(err)
	}
	ipos, ilen, err := segobject.ReadFooter(obj[len(obj)-segobject.FooterSize:], int64(len(obj)))
	if err != nil || ipos != c.Segment.IndexPos || ilen != c.Segment.IndexLen || ipos != c.Position+c.Length {
		en.t.Fatalf("footer: index at %d+%d (%v), coords %+v", ipos, ilen, err, c.Segment)
	}
	ix, err := segobject.ParseIndex(obj[ipos:ipos+ilen], ipos, c.LastOffset)
	if err != nil {
		en.t.Fatal(err)
	}
	if len(ix.Entries) < 2 {
		en.t.Fatalf("%d index entries for %d bytes", len(ix.Entries), c.Length)
	}
	if !bytes.Equal(obj[c.Position:c.Position+c.Length], s.data) {
		en.t.Fatal("object data differs from the batches sent")
	}
	for o := c.BaseOffset; o <= c.LastOffset; o++ {
		blk, ok := ix.Find(o)
		if !ok {
			en.t.Fatalf("offset %d not in the index", o)
		}
		if err := segobject.Verify(obj[blk.Pos:blk.End], blk.BaseOffset, c.LastOffset); err != nil {
			en.t.Fatalf("offset %d: %v", o, err)
		}
	}
	if got := en.stored[len(en.stored)-1]; !reflect.DeepEqual(got, c) {
		en.t.Fatalf("OnSegmentUploaded got %+v", got)
	}
	return resp.GetCoords()
}

// commit commits coords through the Commit RPC, expecting the committed
// end expected.
func (en *segEnv) commit(c *uploadv1.Coords, expected int64) *uploadv1.PartitionCommitResult {
	en.t.Helper()
	resp, err := en.client.Commit(en.ctx, &uploadv1.CommitRequest{Partitions: []*uploadv1.PartitionCommit{{
		Topic: "h", TopicId: en.topic.ID[:], Partition: 0, LeaderRevision: en.part.ModRevision, Coords: c, ExpectedEnd: &expected}}})
	if err != nil {
		en.t.Fatal(err)
	}
	return resp.GetPartitions()[0]
}

func (en *segEnv) ranges() []meta.Coords {
	en.t.Helper()
	rs, err := en.store.RangesFrom(en.ctx, en.topic.ID, 0, 0, 100)
	if err != nil {
		en.t.Fatal(err)
	}
	return rs
}

func (en *segEnv) objects() int {
	en.t.Helper()
	n := 0
	if err := en.bucket.Iter(en.ctx, "", func(string) error { n++; return nil }); err != nil {
		en.t.Fatal(err)
	}
	return n
}

// Sealed segments streamed in many messages become segment objects with
// the right coordinates; committed with expected_end (the tier starting
// at a non-zero offset, then contiguous, then past a gap) they read back
// from the manifest, and the merger concatenates them like merged
// segments.
func TestUploadSegmentCommitAndMerge(t *testing.T) {
	en := newSegEnv(t, true)
	rng := rand.New(rand.NewPCG(1, 2))

	// The tier starts at 1000: the first commit expects no end and raises
	// the log start.
	a := build(rng, 1000, 200, [3]int32{3, 4, 6})
	ca := en.upload(rng, a)
	if r := en.commit(ca, 0); r.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED || r.GetCommittedEndOffset() != a.last+1 {
		t.Fatalf("first commit: %v", r)
	}
	if rs := en.ranges(); len(rs) != 1 || !reflect.DeepEqual(rs[0], CoordsFromProto(ca)) {
		t.Fatalf("manifest %+v", rs)
	}
	if start, err := en.store.LogStart(en.ctx, en.topic.ID, 0); err != nil || start != 1000 {
		t.Fatalf("log start %d, %v", start, err)
	}
	// The next segment, contiguous and larger (so the merger joins them).
	b := build(rng, a.last+1, 400, [3]int32{6, 6, 7})
	cb := en.upload(rng, b)
	if r := en.commit(cb, a.last); r.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_OUT_OF_ORDER {
		t.Fatalf("commit expecting a wrong end: %v", r)
	}
	if r := en.commit(cb, a.last+1); r.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED {
		t.Fatalf("second commit: %v", r)
	}

	// The merger treats them as any segments: one merged entry holding
	// both, epochs and producers carried over.
	m, err := merge.New(merge.Config{Bucket: en.bucket, Store: en.store, ID: "up-1", Logger: quiet,
		Now: func() time.Time { return time.Now().Add(time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	st, err := m.Pass(en.ctx)
	if err != nil || st.Segments != 1 || st.Sources != 2 {
		t.Fatalf("merge pass: %+v, %v", st, err)
	}
	rs := en.ranges()
	if len(rs) != 1 || rs[0].BaseOffset != a.base || rs[0].LastOffset != b.last || rs[0].Segment == nil ||
		fmt.Sprint(rs[0].Epochs) != fmt.Sprint(append(a.epochs[1:], b.epochs[1:]...)) {
		t.Fatalf("merged manifest %+v", rs)
	}
	data, err := en.bucket.GetRange(en.ctx, rs[0].Object, rs[0].Position, rs[0].Length)
	if err != nil || !bytes.Equal(data, append(append([]byte{}, a.data...), b.data...)) {
		t.Fatalf("merged data differs (%v)", err)
	}

	// A segment past a gap (the log start moved past the tier's end):
	// committed, the log start raised, the entries below it dropped.
	c := build(rng, b.last+1+500, 50, [3]int32{7, 7, 7})
	cc := en.upload(rng, c)
	if r := en.commit(cc, b.last+1); r.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED || r.GetCommittedEndOffset() != c.last+1 {
		t.Fatalf("gap commit: %v", r)
	}
	if rs := en.ranges(); len(rs) != 1 || !reflect.DeepEqual(rs[0], CoordsFromProto(cc)) {
		t.Fatalf("manifest after the gap %+v", rs)
	}
	if start, err := en.store.LogStart(en.ctx, en.topic.ID, 0); err != nil || start != c.base {
		t.Fatalf("log start %d, %v", start, err)
	}

	// The commit-age check applies to segment objects: too old by its key,
	// refused before etcd.
	d := build(rng, c.last+1, 10, [3]int32{7, 7, 7})
	cd := en.upload(rng, d)
	born, _ := objectfmt.KeyTime(cd.GetObjectKey())
	en.srv.now = func() time.Time { return born.Add(5*time.Minute + time.Millisecond) }
	if r := en.commit(cd, c.last+1); r.GetStatus() != uploadv1.CommitStatus_COMMIT_STATUS_FAILED {
		t.Fatalf("commit of an old segment: %v", r)
	}
	if end, _, err := en.store.CommittedEnd(en.ctx, en.topic.ID, 0); err != nil || end != c.last+1 {
		t.Fatalf("refused commit reached etcd: end %d, %v", end, err)
	}
	if left, _ := os.ReadDir(en.spool); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
}

// Bad input is InvalidArgument and stores nothing (no object, no spool
// file left); an uploader without an object store says so.
func TestUploadSegmentRefusesBadInput(t *testing.T) {
	en := newSegEnv(t, true)
	rng := rand.New(rand.NewPCG(5, 6))
	s := build(rng, 0, 30, [3]int32{1, 1, 1})
	head := func() *uploadv1.UploadSegmentRequest {
		return &uploadv1.UploadSegmentRequest{NodeId: "n1", Topic: "h", TopicId: en.topic.ID[:], Partition: 0}
	}
	with := func(m *uploadv1.UploadSegmentRequest, batches ...[]byte) *uploadv1.UploadSegmentRequest {
		for _, b := range batches {
			m.Batches = append(m.Batches, b...)
		}
		return m
	}
	corrupt := append([]byte{}, s.batches[2]...)
	corrupt[len(corrupt)-1] ^= 1
	cases := map[string][]*uploadv1.UploadSegmentRequest{
		"empty stream":          nil,
		"no batches":            {head(), {}},
		"gap across messages":   {with(head(), s.batches[0], s.batches[1]), with(&uploadv1.UploadSegmentRequest{}, s.batches[3])},
		"gap in a message":      {with(head(), s.batches[0], s.batches[2])},
		"corrupt CRC":           {with(head(), s.batches[0], s.batches[1]), with(&uploadv1.UploadSegmentRequest{}, corrupt)},
		"missing topic_id":      {with(&uploadv1.UploadSegmentRequest{NodeId: "n1", Topic: "h"}, s.batches[0])},
		"missing node_id":       {with(&uploadv1.UploadSegmentRequest{Topic: "h", TopicId: en.topic.ID[:]}, s.batches[0])},
		"split batch":           {with(head(), s.batches[0], s.batches[1][:40]), with(&uploadv1.UploadSegmentRequest{}, s.batches[1][40:])},
		"another partition":     {with(head(), s.batches[0]), with(&uploadv1.UploadSegmentRequest{Partition: 3}, s.batches[1])},
		"another topic":         {with(head(), s.batches[0]), with(&uploadv1.UploadSegmentRequest{Topic: "x"}, s.batches[1])},
		"first batch bad magic": {with(head(), append(append([]byte{}, s.batches[0][:16]...), append([]byte{1}, s.batches[0][17:]...)...))},
	}
	for name, msgs := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := en.send(msgs)
			if status.Code(err) != codes.InvalidArgument {
				t.Fatalf("got %v", err)
			}
			t.Log(err)
		})
	}
	if n := en.objects(); n != 0 {
		t.Fatalf("%d objects stored", n)
	}
	if left, _ := os.ReadDir(en.spool); len(left) != 0 {
		t.Fatalf("spool files left: %v", left)
	}
	// The same batches, well formed, go through.
	if _, err := en.send([]*uploadv1.UploadSegmentRequest{with(head(), s.batches[0], s.batches[1]), with(&uploadv1.UploadSegmentRequest{}, s.batches[2])}); err != nil {
		t.Fatal(err)
	}

	none := newSegEnv(t, false)
	if _, err := none.send([]*uploadv1.UploadSegmentRequest{with(head(), s.batches[0])}); status.Code(err) != codes.FailedPrecondition {
		t.Fatalf("no object store: %v", err)
	}
}

// Coordinates survive the wire both ways, segment, epochs and transaction
// events included; an intake range has no segment.
func TestCoordsRoundTrip(t *testing.T) {
	for _, c := range []meta.Coords{
		{Object: "o", Position: 8, Length: 10, BaseOffset: 5, LastOffset: 9, MaxTimestamp: 7, LeaderEpoch: 2},
		{Object: "s", Position: 8, Length: 10, BaseOffset: 5, LastOffset: 9, MaxTimestamp: 7, LeaderEpoch: 2,
			Segment: &meta.SegmentRef{IndexPos: 18, IndexLen: 28}, Epochs: []meta.EpochStart{{Epoch: 3, Start: 7}, {Epoch: 5, Start: 8}},
			Producers: []meta.ProducerBatch{{ProducerID: 1, Epoch: 2, FirstSeq: 3, LastSeq: 4, BaseOffset: 6, LastOffset: 7}},
			Txns:      []meta.TxnEvent{{ProducerID: 1, Epoch: 2, Offset: 6, Kind: meta.TxnBegin}, {ProducerID: 1, Epoch: 2, Offset: 8, Kind: meta.TxnAbort}}},
	} {
		if got := CoordsFromProto(CoordsToProto(c)); !reflect.DeepEqual(got, c) {
			t.Errorf("round trip of %+v: %+v", c, got)
		}
	}
}
