// Package segupload writes one partition's sealed segment (hybrid topics:
// local WAL and segments, sealed segments tiered to object storage) as one
// segment object (package segobject, the format merged diskless data
// has), and returns its manifest entry, ready to commit.
//
// The batches arrive in pieces (the UploadSegment stream) and are
// validated as they come: whole v2 batches with valid CRCs, offsets
// contiguous across the whole segment. Nothing is held in memory but the
// segment's index and each producer's last batches: the object is written
// to a spool file as the pieces arrive, and PUT from there once the
// segment is complete. Spooling is what lets the PUT stream too: a
// streaming put needs the object's size up front (objstore.BucketWriter's
// PutReader), and only the end of the stream tells it. It also means bad
// input never reaches the bucket: an invalid segment is refused before
// anything is stored, and the object key (whose time the garbage
// collector and the commit-age check read) is made right before the PUT,
// so a slow stream does not age the object.
//
// Usage: New, then Add for every piece, then Put; Close always (it
// removes the spool file).
package segupload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/objstore"
	"github.com/streamline-dev/streamline/shared/recbatch"
	"github.com/streamline-dev/streamline/shared/segobject"
	"github.com/streamline-dev/streamline/uploader/objectfmt"
)

// Bucket is what a segment upload needs of object storage: a streaming
// PUT of an object of known size (objstore.Bucket implementations satisfy
// it).
type Bucket interface {
	PutReader(ctx context.Context, key string, r io.Reader, size int64) error
}

// ErrInvalid means the segment (or its partition) is malformed: nothing is
// stored. It wraps every input error Add and Put return; other errors are
// the spool file's or the bucket's.
var ErrInvalid = errors.New("invalid segment upload")

// Partition names a segment's partition and the node uploading it.
type Partition struct {
	// NodeID is the uploading log-service node; it names the object (see
	// Put), so it must be one valid key segment.
	NodeID    string
	Topic     string
	TopicID   meta.TopicID
	Partition int32
}

// compactProducersAt is how many producer batches collect before they are
// cut down to each producer's last meta.ProducerWindow.
const compactProducersAt = 1024

// Upload is one segment being received.
type Upload struct {
	p           Partition
	f           *os.File
	w           *segobject.Writer
	next        int64 // offset the next batch must start at; -1 before the first
	leaderEpoch int32 // the first batch's
	epoch       int32 // the last batch's
	epochs      []meta.EpochStart
	producers   []meta.ProducerBatch
	txns        meta.TxnRecorder
	compactAt   int
	err         error // sticky: the upload failed
	closed      bool
}

// New starts a segment of p, spooled in a new file in dir (os.TempDir
// when empty).
func New(dir string, p Partition) (*Upload, error) {
	switch {
	case p.NodeID == "" || strings.Contains(p.NodeID, "/") || objstore.ValidKey(p.NodeID) != nil:
		return nil, fmt.Errorf("%w: node id %q cannot name an object (non-empty, no '/', not starting with '.')", ErrInvalid, p.NodeID)
	case p.Topic == "" || p.TopicID == meta.TopicID{}:
		return nil, fmt.Errorf("%w: partition %q-%d: topic name and id are required", ErrInvalid, p.Topic, p.Partition)
	case p.Partition < 0:
		return nil, fmt.Errorf("%w: partition %s-%d: negative partition", ErrInvalid, p.Topic, p.Partition)
	}
	f, err := spoolFile(dir)
	if err != nil {
		return nil, fmt.Errorf("segupload: spool file: %w", err)
	}
	return &Upload{p: p, f: f, w: segobject.NewWriter(f, 0), next: -1, compactAt: compactProducersAt}, nil
}

// Add appends batches: zero or more whole record batches, concatenated,
// continuing the segment's offsets. Every batch is checked (header, magic
// 2, CRC, counts, contiguous offsets); a bad one fails the upload with an
// error wrapping ErrInvalid.
func (u *Upload) Add(batches []byte) error {
	if u.err != nil {
		return u.err
	}
	var spoolErr error
	n, err := recbatch.Iterate(batches, true, func(h recbatch.Header, batch []byte) error {
		switch {
		case u.next < 0 && h.BaseOffset < 0:
			return fmt.Errorf("batch at negative offset %d", h.BaseOffset)
		case u.next >= 0 && h.BaseOffset != u.next:
			return fmt.Errorf("batch at offset %d where %d was expected (offsets must be contiguous)", h.BaseOffset, u.next)
		}
		if err := u.w.Append(batch); err != nil {
			spoolErr = err
			return err
		}
		if u.next < 0 {
			u.leaderEpoch, u.epoch = h.PartitionLeaderEpoch, h.PartitionLeaderEpoch
		} else if h.PartitionLeaderEpoch != u.epoch {
			u.epochs = append(u.epochs, meta.EpochStart{Epoch: h.PartitionLeaderEpoch, Start: h.BaseOffset})
			u.epoch = h.PartitionLeaderEpoch
		}
		u.next = h.NextOffset()
		u.txns.Add(h, batch)
		if h.Idempotent() && !h.Control() { // as upload.Write keeps them
			u.producers = append(u.producers, meta.ProducerBatch{
				ProducerID: h.ProducerID, Epoch: h.ProducerEpoch, FirstSeq: h.BaseSequence, LastSeq: h.LastSequence(),
				BaseOffset: h.BaseOffset, LastOffset: h.LastOffset(),
			})
			if len(u.producers) >= u.compactAt {
				u.producers = meta.LastPerProducer(u.producers, meta.ProducerWindow)
				u.compactAt = max(compactProducersAt, 2*len(u.producers))
			}
		}
		return nil
	})
	switch {
	case spoolErr != nil:
		u.err = fmt.Errorf("segupload: spool file: %w", spoolErr)
	case err != nil:
		where := "the first batch"
		if u.next >= 0 {
			where = fmt.Sprintf("the batch expected at offset %d", u.next)
		}
		u.err = fmt.Errorf("%w: partition %s-%d: %s, %d bytes into a message of %d: %v", ErrInvalid, u.p.Topic, u.p.Partition, where, n, len(batches), err)
	}
	return u.err
}

// Put ends the segment and PUTs it, named by objectfmt.NewKey with the
// uploading node and, in place of a flush sequence, the segment's base
// offset (so the garbage collector ages it like every other object, and
// commits of it are refused once it is too old). It returns the key and
// the manifest entry: Position and Length are the batch data, Segment the
// index, LeaderEpoch the first batch's partition leader epoch, Epochs the
// first offset of every later epoch, Producers each idempotent producer's
// last meta.ProducerWindow batches, Txns the transaction events. A segment with no batches wraps
// ErrInvalid. Call Put once.
func (u *Upload) Put(ctx context.Context, b Bucket) (string, meta.Coords, error) {
	switch {
	case u.err != nil:
		return "", meta.Coords{}, u.err
	case u.closed:
		return "", meta.Coords{}, errors.New("segupload: Put after Close")
	case u.next < 0:
		u.err = fmt.Errorf("%w: partition %s-%d: no record batches", ErrInvalid, u.p.Topic, u.p.Partition)
		return "", meta.Coords{}, u.err
	}
	info, err := u.w.Close()
	if err != nil {
		u.err = fmt.Errorf("segupload: spool file: %w", err)
		return "", meta.Coords{}, u.err
	}
	u.err = errors.New("segupload: Put called twice")
	key := objectfmt.NewKey(u.p.NodeID, uint64(info.BaseOffset), objstore.SpreadsKeys(b))
	if err := b.PutReader(ctx, key, io.NewSectionReader(u.f, 0, info.Size), info.Size); err != nil {
		return "", meta.Coords{}, fmt.Errorf("put %s: %w", key, err)
	}
	return key, meta.Coords{
		Object: key, Position: info.DataPos, Length: info.DataLen, BaseOffset: info.BaseOffset, LastOffset: info.LastOffset,
		MaxTimestamp: info.MaxTimestamp, LeaderEpoch: u.leaderEpoch,
		Producers: meta.LastPerProducer(u.producers, meta.ProducerWindow),
		Segment:   &meta.SegmentRef{IndexPos: info.IndexPos, IndexLen: info.IndexLen},
		Epochs:    u.epochs,
		Txns:      u.txns.Events(),
	}, nil
}

// Close releases the spool file (unlinked since New, so its space is
// freed with the handle). It is safe to call more than once, and after Put.
func (u *Upload) Close() error {
	if u.closed {
		return nil
	}
	u.closed = true
	return u.f.Close()
}
