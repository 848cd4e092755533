package logrpc

import (
	"context"
	"math"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"

	"github.com/streamline-dev/streamline/logsvc/partition"
	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// WriteTxnMarkers implements LogService.WriteTxnMarkers: each marker goes
// to its partition (looked up and refused exactly as a produce is), all
// are submitted in request order and then awaited together, so markers of
// one request share WAL group commits; one result per marker, in order.
// timeout_ms bounds the wait (REQUEST_TIMED_OUT after; the marker may
// still become durable, and the coordinator retries it harmlessly).
func (s *Server) WriteTxnMarkers(ctx context.Context, req *logv1.WriteTxnMarkersRequest) (*logv1.WriteTxnMarkersResponse, error) {
	if t := req.GetTimeoutMs(); t > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(t)*time.Millisecond)
		defer cancel()
	}
	results := make([]*logv1.TxnMarkerResult, len(req.GetMarkers()))
	pending := make([]*partition.Pending, len(req.GetMarkers()))
	for i, m := range req.GetMarkers() {
		r := &logv1.TxnMarkerResult{Topic: m.GetTopic(), Partition: m.GetPartition(), ProducerId: m.GetProducerId(), Offset: -1}
		results[i] = r
		if m.GetProducerEpoch() < 0 || m.GetProducerEpoch() > math.MaxInt16 {
			r.ErrorCode, r.ErrorMessage = int32(kerr.InvalidRequest.Code), "producer_epoch must be an int16 at least 0"
			continue
		}
		p, kerrCode := s.parts.Lookup(m.GetTopic(), m.GetTopicId(), m.GetPartition())
		if kerrCode != nil {
			r.ErrorCode, r.ErrorMessage = code(kerrCode), lookupMessage(kerrCode, m.GetTopic(), m.GetPartition())
			continue
		}
		pending[i] = p.SubmitMarker(ctx, partition.Marker{
			ProducerID: m.GetProducerId(), ProducerEpoch: int16(m.GetProducerEpoch()), Commit: m.GetCommit(),
			CoordinatorEpoch: m.GetCoordinatorEpoch(), TransactionVersion: int16(m.GetTransactionVersion()),
		})
	}
	for i, res := range partition.WaitAll(ctx, pending) {
		if pending[i] != nil {
			results[i].ErrorCode, results[i].ErrorMessage, results[i].Offset = code(res.Err), res.Message, res.BaseOffset
		}
	}
	return &logv1.WriteTxnMarkersResponse{Results: results}, nil
}
