package handlers

import (
	"context"
	"sync"

	"github.com/twmb/franz-go/pkg/kerr"

	logv1 "github.com/streamline-dev/streamline/proto/gen/streamline/log/v1"
)

// nodeCall is the part of a Kafka request bound for one log-service node:
// the LogService request and, in the same order as its partitions, the
// response slots its results fill.
type nodeCall[Req any, Slot any] struct {
	addr string
	req  Req
	dst  []Slot
}

// sentPartition and partitionResult are what every per-partition
// LogService request entry and result have.
type sentPartition interface {
	GetTopic() string
	GetPartition() int32
}

type partitionResult interface {
	sentPartition
	GetErrorCode() int32
}

// forwardEach runs one unary LogService call per node in parallel and
// copies each node's results into the slots it covers, matched by position
// and checked by topic and partition (a mismatch is UNKNOWN_SERVER_ERROR).
// A failed call answers all its slots with the Kafka error for the failure
// (rpcError); apply runs only for results without an error.
func forwardEach[Req any, Slot any, Sent sentPartition, Res partitionResult](
	ctx context.Context, h *Handlers, what string, calls map[string]*nodeCall[Req, Slot],
	sent func(Req) []Sent,
	rpc func(context.Context, logv1.LogServiceClient, Req) ([]Res, error),
	setCode func(Slot, int16),
	apply func(Slot, Res),
) {
	var wg sync.WaitGroup
	for _, c := range calls {
		wg.Go(func() {
			cl, err := h.cfg.Logs.Client(c.addr)
			var results []Res
			if err == nil {
				results, err = rpc(ctx, cl, c.req)
			}
			if err != nil {
				h.log.Debug(what+" forward failed", "addr", c.addr, "err", err)
				code := rpcError(err).Code
				for _, s := range c.dst {
					setCode(s, code)
				}
				return
			}
			asked := sent(c.req)
			for i, s := range c.dst {
				if i >= len(results) || results[i].GetTopic() != asked[i].GetTopic() || results[i].GetPartition() != asked[i].GetPartition() {
					h.log.Error("log service answered "+what+" out of order", "addr", c.addr, "sent", len(c.dst), "got", len(results))
					setCode(s, kerr.UnknownServerError.Code)
					continue
				}
				setCode(s, int16(results[i].GetErrorCode()))
				if results[i].GetErrorCode() == 0 {
					apply(s, results[i])
				}
			}
		})
	}
	wg.Wait()
}
