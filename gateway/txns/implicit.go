package txns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// Implicit adds under transaction version 2 (KIP-890 part 2): a producer
// no longer sends AddPartitionsToTxn or AddOffsetsToTxn; a transactional
// Produce v12+ adds its partitions, and a TxnOffsetCommit v5+ its group,
// to the transaction on the way. The gateway that receives the request
// asks the transactional id's coordinator: itself when it holds the id's
// shard, otherwise the coordinating gateway over the Kafka protocol - an
// AddPartitionsToTxn or AddOffsetsToTxn request, as Kafka's brokers send
// their coordinator an AddPartitionsToTxn. A request keeps its client's
// semantics (checks, errors, etcd writes), so there is one code path for
// adding whoever asks.

// remoteTimeout bounds one forwarded add, retries included: below the
// clients' produce and commit timeouts (30 s and more), so the client gets
// an answer rather than a timeout.
const remoteTimeout = 10 * time.Second

// Remote sends adds to the coordinating gateway of a transactional id with
// a franz-go client: it finds the coordinator (FindCoordinator key type 1)
// and follows NOT_COORDINATOR like any Kafka client.
type Remote struct {
	seed string
	log  *slog.Logger

	once sync.Once
	cl   *kgo.Client
	err  error
}

// NewRemote returns a Remote that bootstraps from seed (this gateway's own
// Kafka listener: the cluster's other gateways are learnt from Metadata).
// The client is created on first use.
func NewRemote(seed string, log *slog.Logger) *Remote {
	if log == nil {
		log = slog.Default()
	}
	return &Remote{seed: seed, log: log}
}

func (r *Remote) client() (*kgo.Client, error) {
	r.once.Do(func() {
		r.cl, r.err = kgo.NewClient(
			kgo.SeedBrokers(r.seed),
			kgo.ClientID("streamline-gateway"),
			kgo.RetryTimeout(remoteTimeout),
		)
	})
	return r.cl, r.err
}

// Close closes the client, if one was made.
func (r *Remote) Close() {
	r.once.Do(func() { r.err = fmt.Errorf("txns: remote closed") })
	if r.cl != nil {
		r.cl.Close()
	}
}

// AddPartitions sends AddPartitionsToTxn (v3, the client form) for the
// producer's partitions to the id's coordinator; one error per partition.
func (r *Remote) AddPartitions(ctx context.Context, id string, p ProducerIDAndEpoch, parts []meta.TopicPartition) []*kerr.Error {
	out := make([]*kerr.Error, len(parts))
	fill := func(e *kerr.Error) []*kerr.Error {
		for i := range out {
			if out[i] == nil {
				out[i] = e
			}
		}
		return out
	}
	cl, err := r.client()
	if err != nil {
		return fill(kerr.CoordinatorNotAvailable)
	}
	req := kmsg.NewPtrAddPartitionsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch = id, p.ID, p.Epoch
	index := map[meta.TopicPartition]int{}
	for i, tp := range parts {
		index[tp] = i
		var rt *kmsg.AddPartitionsToTxnRequestTopic
		for j := range req.Topics {
			if req.Topics[j].Topic == tp.Topic {
				rt = &req.Topics[j]
			}
		}
		if rt == nil {
			req.Topics = append(req.Topics, kmsg.NewAddPartitionsToTxnRequestTopic())
			rt = &req.Topics[len(req.Topics)-1]
			rt.Topic = tp.Topic
		}
		rt.Partitions = append(rt.Partitions, tp.Partition)
	}
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return fill(r.failed("AddPartitionsToTxn", id, err))
	}
	if e := kerr.TypedErrorForCode(resp.ErrorCode); e != nil {
		return fill(e)
	}
	answered := make([]bool, len(parts))
	for _, rt := range resp.Topics {
		for _, rp := range rt.Partitions {
			if i, ok := index[meta.TopicPartition{Topic: rt.Topic, Partition: rp.Partition}]; ok {
				out[i], answered[i] = kerr.TypedErrorForCode(rp.ErrorCode), true
			}
		}
	}
	for i := range out {
		if !answered[i] {
			out[i] = kerr.UnknownServerError
		}
	}
	return out
}

// failed logs a forwarded request that got no answer and returns the
// error to answer: the client's Kafka error if it gave up on one (e.g.
// NOT_COORDINATOR while shards move), else COORDINATOR_NOT_AVAILABLE.
func (r *Remote) failed(request, id string, err error) *kerr.Error {
	r.log.Warn("forwarding "+request+" to the transaction coordinator failed", "transactional_id", id, "err", err)
	if ke := (*kerr.Error)(nil); errors.As(err, &ke) {
		return ke
	}
	return kerr.CoordinatorNotAvailable
}

// AddOffsets sends AddOffsetsToTxn for the group to the id's coordinator.
func (r *Remote) AddOffsets(ctx context.Context, id string, p ProducerIDAndEpoch, group string) *kerr.Error {
	cl, err := r.client()
	if err != nil {
		return kerr.CoordinatorNotAvailable
	}
	req := kmsg.NewPtrAddOffsetsToTxnRequest()
	req.TransactionalID, req.ProducerID, req.ProducerEpoch, req.Group = id, p.ID, p.Epoch, group
	ctx, cancel := context.WithTimeout(ctx, remoteTimeout)
	defer cancel()
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return r.failed("AddOffsetsToTxn", id, err)
	}
	return kerr.TypedErrorForCode(resp.ErrorCode)
}

// ImplicitAddPartitions adds parts to the producer's transaction on behalf
// of a Produce v12+ (transaction version 2): through this coordinator when
// it coordinates id, else through the coordinating gateway (cfg.Remote).
func (c *Coordinator) ImplicitAddPartitions(ctx context.Context, id string, p ProducerIDAndEpoch, parts []meta.TopicPartition) []*kerr.Error {
	if _, local := c.groups.Guard(id); local || c.cfg.Remote == nil {
		return c.AddPartitions(ctx, id, p, parts)
	}
	return c.cfg.Remote.AddPartitions(ctx, id, p, parts)
}

// ImplicitAddOffsets adds group to the producer's transaction on behalf of
// a TxnOffsetCommit v5+ (transaction version 2), locally or remotely as
// ImplicitAddPartitions.
func (c *Coordinator) ImplicitAddOffsets(ctx context.Context, id string, p ProducerIDAndEpoch, group string) *kerr.Error {
	if _, local := c.groups.Guard(id); local || c.cfg.Remote == nil {
		return c.AddOffsets(ctx, id, p, group)
	}
	return c.cfg.Remote.AddOffsets(ctx, id, p, group)
}
