package handlers

import (
	"context"

	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// ApiVersions: v0-4
//
// Behaviour:
// * Lists every registered key with its version range (SupportedVersions),
//   so what is advertised is exactly what is served.
// * A version this gateway does not serve is answered, not dropped (KIP-511):
//   with a v0 response carrying UNSUPPORTED_VERSION and only ApiVersions'
//   own range, from which the client picks the version to ask again with
//   (as Kafka does; franz-go takes a full list as the answer itself and
//   would miss the v3+ features). The server hands such requests over with
//   only the version set.
// * Features (KIP-584, v3+): transaction.version is supported from 0 to 2
//   and finalized at Config.TransactionVersion (default 2). At 2, clients
//   that know KIP-890 part 2 (franz-go 1.19+, the Java client 4.0+) run
//   transaction version 2: Produce v12 and TxnOffsetCommit v5 add to the
//   transaction implicitly and EndTxn v5 bumps the epoch per transaction.
//   At 1 they run the classic protocol (AddPartitionsToTxn,
//   AddOffsetsToTxn), which is served at every level. No other feature is
//   advertised.
// * v3's ClientSoftwareName/Version are not validated; they only label
//   client metrics in Kafka, which Streamline does not keep.
//
// Version notes:
// * v1: ThrottleMillis; v3: flexible body (the response header stays v0);
//   v4: no wire change (a supported feature's MinVersion may be 0, as
//   transaction.version's is); v5 (KIP-1242 ClusterID/NodeID checks) is not
//   served.

func init() { register(18, 0, 4, false, (*Handlers).handleApiVersions) }

// TransactionVersionFeature is the KIP-584 feature naming the transaction
// protocol; MaxTransactionVersion is the highest level served (2: KIP-890
// part 2).
const (
	TransactionVersionFeature       = "transaction.version"
	MaxTransactionVersion     int16 = 2
)

func (h *Handlers) handleApiVersions(_ context.Context, kr *kafkaserver.Request) (kmsg.Response, error) {
	req := kr.Body.(*kmsg.ApiVersionsRequest)
	resp := req.ResponseKind().(*kmsg.ApiVersionsResponse)
	if e := registry[18]; req.Version < e.min || req.Version > e.max {
		// KIP-511, as Kafka: a v0 response with only ApiVersions' own
		// range, which the client retries with. A full list would be
		// taken as the answer by some clients (franz-go), without the
		// v3+ features.
		resp.Version = 0
		resp.ErrorCode = kerr.UnsupportedVersion.Code
		k := kmsg.NewApiVersionsResponseApiKey()
		k.ApiKey, k.MinVersion, k.MaxVersion = 18, e.min, e.max
		resp.ApiKeys = []kmsg.ApiVersionsResponseApiKey{k}
		return resp, nil
	}
	resp.ApiKeys = SupportedVersions()
	if resp.Version >= 3 {
		tv := h.cfg.TransactionVersion
		sf := kmsg.NewApiVersionsResponseSupportedFeature()
		sf.Name, sf.MinVersion, sf.MaxVersion = TransactionVersionFeature, 0, MaxTransactionVersion
		ff := kmsg.NewApiVersionsResponseFinalizedFeature()
		ff.Name, ff.MinVersionLevel, ff.MaxVersionLevel = TransactionVersionFeature, tv, tv
		resp.SupportedFeatures = []kmsg.ApiVersionsResponseSupportedFeature{sf}
		resp.FinalizedFeatures = []kmsg.ApiVersionsResponseFinalizedFeature{ff}
		// The epoch orders finalized-feature changes (Kafka: the metadata
		// offset); the level here changes only with a restart, and clients
		// read the features only when it is not -1.
		resp.FinalizedFeaturesEpoch = 0
	}
	return resp, nil
}
