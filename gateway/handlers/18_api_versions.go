package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: v0-3
//
// Behaviour:
// * Lists every registered key with its version range (SupportedVersions),
//   so what is advertised is exactly what is served.
// * A version this gateway does not serve is answered, not dropped (KIP-511):
//   with a v0 response carrying UNSUPPORTED_VERSION and the full list, from
//   which the client picks a version both sides speak and asks again. The
//   server hands such requests over with only the version set.
// * No features (KIP-584) are advertised: without transaction.version 2,
//   clients run the classic transaction protocol (before KIP-890; no
//   AddPartitionsToTxn v4+, EndTxn v4+ or Produce v12+ is served), and no
//   other feature-gated behaviour is served.
// * v3's ClientSoftwareName/Version are not validated; they only label
//   client metrics in Kafka, which Streamline does not keep.
//
// Version notes:
// * v1: ThrottleMillis; v3: flexible body (the response header stays v0).

func init() { register(18, 0, 3, false, (*Handlers).handleApiVersions) }

func (h *Handlers) handleApiVersions(_ context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if e := registry[18]; req.Version < e.min || req.Version > e.max {
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
	}
	resp.ApiKeys = SupportedVersions()
	return resp, nil
}
