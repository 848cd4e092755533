package disklessstore

import (
	"context"
	"errors"
	"fmt"

	"github.com/streamline-dev/streamline/logsvc/buffer"
	"github.com/streamline-dev/streamline/logsvc/storage"
	uploadv1 "github.com/streamline-dev/streamline/proto/gen/streamline/upload/v1"
)

// flush uploads one buffer flush through a live uploader (step 1, runs in
// parallel with other flushes) and returns its commit (step 2, run by the
// buffer one flush at a time, in order).
func (e *Engine) flush(ctx context.Context, f *buffer.Flush) (buffer.CommitFunc, error) {
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
	return func(ctx context.Context, streams []string) (map[string]error, error) {
		want := map[string]bool{}
		for _, s := range streams {
			want[s] = true
		}
		creq := &uploadv1.CommitRequest{}
		var order []*Log
		for i, l := range logs {
			if !want[l.stream] {
				continue
			}
			order = append(order, l)
			creq.Partitions = append(creq.Partitions, &uploadv1.PartitionCommit{
				Topic: l.spec.Topic.Name, TopicId: l.spec.Topic.ID[:], Partition: l.spec.Partition,
				LeaderRevision: l.spec.Leader.ModRevision, Coords: resp.GetPartitions()[i],
			})
		}
		if len(order) == 0 {
			return nil, nil
		}
		var cresp *uploadv1.CommitResponse
		err := e.callUploader(ctx, func(ctx context.Context, c uploadv1.UploadServiceClient) (err error) {
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
