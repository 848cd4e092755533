package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestTransactionVersion2AcrossGateways: under transaction version 2 the
// producer sends no AddPartitionsToTxn; the gateway that receives its
// produce adds the partition to the transaction. Here that gateway is not
// the transactional id's coordinator (the partition is led through one
// gateway, the id coordinated by the other), so the add is forwarded over
// the Kafka protocol. Three transactions commit, the version 2 ones each
// bumping the producer epoch (version 1 keeps it), and a read_committed
// consumer sees each record once.
func TestTransactionVersion2AcrossGateways(t *testing.T) {
	const topic = "txn-v2-gateways"
	c := cluster.StartCluster(t, cluster.ClusterOptions{Uploaders: -1})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	seeds := c.Bootstrap()
	admCl := newSeededClient(t, seeds)
	adm := kadm.NewClient(admCl)
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create topic: %v %v", err, resp.Err)
	}
	// The gateway Metadata names as the partition's leader receives its
	// produces; the id must be coordinated by another one.
	var leader int32 = -1
	waitFor(ctx, t, func() bool {
		req := kmsg.NewPtrMetadataRequest()
		mt := kmsg.NewMetadataRequestTopic()
		mt.Topic = kmsg.StringPtr(topic)
		req.Topics = append(req.Topics, mt)
		resp, err := req.RequestWith(ctx, admCl)
		if err != nil || len(resp.Topics) != 1 || len(resp.Topics[0].Partitions) != 1 || resp.Topics[0].Partitions[0].ErrorCode != 0 {
			return false
		}
		leader = resp.Topics[0].Partitions[0].Leader
		return true
	}, "a leader for %s", topic)
	other := int32(1)
	if leader == 1 {
		other = 2
	}
	id := txnIDCoordinatedBy(ctx, t, admCl, other, "v2-gateways")
	t.Logf("partition 0 is led through gateway %d, %s is coordinated by gateway %d", leader, id, other)

	prod := newSeededClient(t, seeds, kgo.TransactionalID(id), kgo.DefaultProduceTopic(topic))
	// franz-go decides on version 2 at BeginTransaction from the features
	// of the brokers it has talked to; a new client has talked to none, so
	// its first transaction runs version 1 and it opts in at that
	// transaction's EndTxn. The next ones run version 2.
	epochs := []int16{}
	for i := range 3 {
		if err := prod.BeginTransaction(); err != nil {
			t.Fatal(err)
		}
		for j := range 10 {
			if err := prod.ProduceSync(ctx, &kgo.Record{Value: fmt.Appendf(nil, "t%d-%d", i, j)}).FirstErr(); err != nil {
				t.Fatalf("transaction %d: produce through the non-coordinating gateway: %v", i, err)
			}
		}
		if err := prod.EndTransaction(ctx, kgo.TryCommit); err != nil {
			t.Fatalf("transaction %d: commit: %v", i, err)
		}
		d, err := adm.DescribeTransactions(ctx, id)
		if err != nil || d[id].Err != nil || d[id].State != "CompleteCommit" {
			t.Fatalf("transaction %d: describe %v %+v", i, err, d[id])
		}
		epochs = append(epochs, d[id].ProducerEpoch)
	}
	t.Logf("producer epochs after each commit: %v", epochs)
	if epochs[2] != epochs[1]+1 {
		t.Fatalf("producer epochs after the three commits %v: want the last two one bump apart (transaction version 2)", epochs)
	}
	seen := readUntil(ctx, t, seeds[0], topic, values(10, "t0", "t1", "t2"), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	checkCommittedOnly(t, "read_committed consumer", seen, 10, "t0", "t1", "t2")
}
