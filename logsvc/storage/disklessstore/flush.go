package disklessstore

import (
	"context"
	"errors"
	"fmt"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
)

// flush uploads one buffer flush through a live uploader (step 1, runs in
// parallel with other flushes) and returns its commit (step 2, run by the
// buffer one call at a time, each partition's flushes in order; one flush
// may be committed in several calls, for different partitions).
func (e *Engine) flush(ctx context.Context, f *buffer.Flush) (_ buffer.CommitFunc, err error) {
	parent, links := e.flushTrace(f)
	var span trace.Span
	ctx, span = e.startFlushSpan(ctx, parent, links, "logsvc.diskless.upload", f)
	defer func() { endSpan(span, err) }()
	// req and the batches it holds are never modified once built: an
	// all-in-one's uploader reads them in place (inproc.ShareRequests),
	// and a retry or a hedge sends the same request again.
	req := &uploadv1.UploadRequest{NodeId: e.opts.NodeID, FlushSeq: f.Seq}
	logs := make([]*Log, len(f.Streams))
	for i, sp := range f.Streams {
		l := f.Items[sp.Start].Meta.(itemMeta).log
		logs[i] = l
		up := &uploadv1.UploadPartition{Topic: l.spec.Topic.Name, TopicId: l.spec.Topic.ID[:], Partition: l.spec.Partition,
			LeaderEpoch: l.spec.Leader.LeaderEpoch}
		for _, it := range f.Items[sp.Start:sp.End] {
			up.Batches = append(up.Batches, it.Data)
		}
		req.Partitions = append(req.Partitions, up)
	}
	resp, err := e.upload(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("%w: upload: %v", storage.ErrStorage, err)
	}
	if len(resp.GetPartitions()) != len(logs) {
		return nil, fmt.Errorf("%w: uploader answered %d partitions for %d", storage.ErrStorage, len(resp.GetPartitions()), len(logs))
	}
	return func(ctx context.Context, streams []string) (_ map[string]error, err error) {
		var span trace.Span
		ctx, span = e.startFlushSpan(ctx, parent, links, "logsvc.diskless.commit", f)
		defer func() { endSpan(span, err) }()
		want := map[string]bool{}
		for _, s := range streams {
			want[s] = true
		}
		creq := &uploadv1.CommitRequest{}
		var order []*Log
		var items [][]buffer.Item // parallel to order
		for i, l := range logs {
			if !want[l.stream] {
				continue
			}
			order = append(order, l)
			items = append(items, f.Items[f.Streams[i].Start:f.Streams[i].End])
			creq.Partitions = append(creq.Partitions, &uploadv1.PartitionCommit{
				Topic: l.spec.Topic.Name, TopicId: l.spec.Topic.ID[:], Partition: l.spec.Partition,
				LeaderRevision: l.spec.Leader.ModRevision, Coords: resp.GetPartitions()[i],
			})
		}
		if len(order) == 0 {
			return nil, nil
		}
		var cresp *uploadv1.CommitResponse
		err = e.callUploader(ctx, func(ctx context.Context, c uploadv1.UploadServiceClient) (err error) {
			cresp, err = c.Commit(ctx, creq)
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("%w: commit: %v", storage.ErrStorage, err)
		}
		failed := map[string]error{}
		for i, r := range cresp.GetPartitions() {
			if i >= len(order) {
				break
			}
			l := order[i]
			switch r.GetStatus() {
			case uploadv1.CommitStatus_COMMIT_STATUS_COMMITTED:
				if c := creq.Partitions[i].GetCoords(); c != nil {
					l.committed(c.GetLastOffset(), c.GetLength())
				}
				l.publish(items[i])
			case uploadv1.CommitStatus_COMMIT_STATUS_FENCED:
				failed[l.stream] = fmt.Errorf("%w: %s", storage.ErrFenced, r.GetMessage())
			default:
				failed[l.stream] = fmt.Errorf("%w: commit %s: %s", storage.ErrStorage, r.GetStatus(), r.GetMessage())
			}
		}
		for _, l := range order[len(cresp.GetPartitions()):] {
			failed[l.stream] = fmt.Errorf("%w: commit answer missing", storage.ErrStorage)
		}
		return failed, nil
	}, nil
}

// flushTrace finds a flush's traced batches: the first one's buffer-wait
// span parents the flush's upload and commit spans (a flush mixes the
// batches of many requests, so it can belong to one trace only), and every
// traced batch is linked. Nothing when the engine does not trace.
func (e *Engine) flushTrace(f *buffer.Flush) (parent trace.SpanContext, links []trace.Link) {
	if e.tracer == nil {
		return parent, nil
	}
	for _, it := range f.Items {
		sc := it.Meta.(itemMeta).trace
		if !sc.IsValid() {
			continue
		}
		if !parent.IsValid() {
			parent = sc
		}
		links = append(links, trace.Link{SpanContext: sc})
	}
	return parent, links
}

// startFlushSpan starts one step of a traced flush (no span when no batch
// of it is traced, or the engine does not trace).
func (e *Engine) startFlushSpan(ctx context.Context, parent trace.SpanContext, links []trace.Link, name string, f *buffer.Flush) (context.Context, trace.Span) {
	if e.tracer == nil || !parent.IsValid() {
		return ctx, nil
	}
	return e.tracer.Start(trace.ContextWithSpanContext(ctx, parent), name, trace.WithLinks(links...), trace.WithAttributes(
		attribute.Int64("streamline.flush_seq", int64(f.Seq)), attribute.Int("streamline.flush_bytes", f.Bytes),
		attribute.Int("streamline.flush_batches", len(f.Items)), attribute.Int("streamline.flush_partitions", len(f.Streams))))
}

// endSpan ends span (nil: not traced), recording err.
func endSpan(span trace.Span, err error) {
	if span == nil {
		return
	}
	if err != nil {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}

// callUploader runs call against live uploaders until one succeeds: any
// uploader can serve any request, so a dead or failing one is skipped.
func (e *Engine) callUploader(ctx context.Context, call func(context.Context, uploadv1.UploadServiceClient) error) error {
	clients := e.opts.Uploaders()
	if len(clients) == 0 {
		return ErrNoUploader
	}
	var errs []error
	for _, c := range clients {
		cctx, cancel := context.WithTimeout(ctx, e.opts.RPCTimeout)
		err := call(cctx, c)
		cancel()
		if err == nil {
			return nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return fmt.Errorf("%w: %v", ErrNoUploader, errors.Join(errs...))
}
