package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestSaramaRoundTrip produces with IBM/sarama's idempotent sync producer
// and reads back with its partition consumer, on a local and a diskless
// topic.
func TestSaramaRoundTrip(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	for _, mode := range []string{"local", "diskless"} {
		t.Run(mode, func(t *testing.T) {
			topic := "sarama-" + mode
			resp, err := adm.CreateTopic(ctx, 2, 1, map[string]*string{"storage.mode": kmsg.StringPtr(mode)}, topic)
			if err != nil || resp.Err != nil {
				t.Fatalf("create: %v %v", err, resp.Err)
			}
			cfg := sarama.NewConfig()
			cfg.Version = sarama.V2_8_0_0
			cfg.Producer.Return.Successes = true
			cfg.Producer.RequiredAcks = sarama.WaitForAll
			cfg.Producer.Idempotent = true
			cfg.Net.MaxOpenRequests = 1
			cfg.Producer.Retry.Max = 10
			prod, err := sarama.NewSyncProducer([]string{s.KafkaAddr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer prod.Close()
			type at struct {
				p int32
				o int64
			}
			sent := map[string]at{}
			// Each synchronous send waits for its flush; diskless flushes
			// every 100 ms, so fewer records keep the test short.
			n := 300
			if mode == "diskless" {
				n = 60
			}
			for i := 0; i < n; i++ {
				v := fmt.Sprintf("sarama-%d", i)
				p, o, err := prod.SendMessage(&sarama.ProducerMessage{Topic: topic, Key: sarama.StringEncoder(fmt.Sprint(i % 7)), Value: sarama.StringEncoder(v),
					Headers: []sarama.RecordHeader{{Key: []byte("i"), Value: []byte(fmt.Sprint(i))}}})
				if err != nil {
					t.Fatalf("send %d: %v", i, err)
				}
				sent[v] = at{p, o}
			}
			cons, err := sarama.NewConsumer([]string{s.KafkaAddr()}, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer cons.Close()
			got := 0
			for p := int32(0); p < 2; p++ {
				pc, err := cons.ConsumePartition(topic, p, sarama.OffsetOldest)
				if err != nil {
					t.Fatal(err)
				}
				want := 0
				for _, a := range sent {
					if a.p == p {
						want++
					}
				}
				for i := 0; i < want; i++ {
					select {
					case m := <-pc.Messages():
						a, ok := sent[string(m.Value)]
						if !ok || a.p != p || a.o != m.Offset || len(m.Headers) != 1 {
							t.Fatalf("message %q at %d/%d: sent at %+v", m.Value, p, m.Offset, a)
						}
						got++
					case err := <-pc.Errors():
						t.Fatal(err)
					case <-ctx.Done():
						t.Fatalf("partition %d: %d of %d", p, i, want)
					}
				}
				pc.Close()
			}
			if got != len(sent) {
				t.Fatalf("consumed %d of %d", got, len(sent))
			}
		})
	}
}
