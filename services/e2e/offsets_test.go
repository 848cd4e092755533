package e2e

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/streamline-dev/streamline/services/cluster"
)

// TestListOffsetsByTimestamp produces records with known timestamps and
// checks ListOffsets earliest, latest and by time through the gateway, as
// consumers seeking to a time do.
func TestListOffsetsByTimestamp(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "by-time"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	// Ten records per produce call so they land in several batches.
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic))
	base := time.Now().Add(-time.Hour).Truncate(time.Second)
	for i := 0; i < 50; i++ {
		r := &kgo.Record{Value: []byte(strconv.Itoa(i)), Timestamp: base.Add(time.Duration(i) * time.Second)}
		if err := prod.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	start, err := adm.ListStartOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	end, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := start.Lookup(topic, 0); o.Offset != 0 || o.Err != nil {
		t.Fatalf("earliest %+v", o)
	}
	if o, _ := end.Lookup(topic, 0); o.Offset != 50 || o.Err != nil {
		t.Fatalf("latest %+v", o)
	}
	for _, c := range []struct {
		at   time.Time
		want int64
	}{
		{base.Add(-time.Minute), 0},
		{base.Add(17 * time.Second), 17},
		{base.Add(17*time.Second + time.Millisecond), 18},
		{base.Add(49 * time.Second), 49},
	} {
		offs, err := adm.ListOffsetsAfterMilli(ctx, c.at.UnixMilli(), topic)
		if err != nil {
			t.Fatal(err)
		}
		o, _ := offs.Lookup(topic, 0)
		if o.Err != nil || o.Offset != c.want {
			t.Fatalf("after %v: offset %d err %v, want %d", c.at.Sub(base), o.Offset, o.Err, c.want)
		}
	}
	// After the last timestamp Kafka answers the log end offset (kadm maps
	// the -1 "none" answer to the end).
	offs, err := adm.ListOffsetsAfterMilli(ctx, base.Add(time.Hour).UnixMilli(), topic)
	if err != nil {
		t.Fatal(err)
	}
	if o, _ := offs.Lookup(topic, 0); o.Err != nil || o.Offset != 50 {
		t.Fatalf("after the last record: %+v", o)
	}
}

// TestAcksZeroProduce produces with acks=0 (fire and forget: no responses)
// and checks every record arrives, in order.
func TestAcksZeroProduce(t *testing.T) {
	s := cluster.StartAllInOne(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const topic = "acks-zero"
	adm := kadm.NewClient(newClient(t, s.KafkaAddr()))
	if resp, err := adm.CreateTopic(ctx, 1, 1, nil, topic); err != nil || resp.Err != nil {
		t.Fatalf("create: %v %v", err, resp.Err)
	}
	// acks=0 is fire and forget: a record sent before the new partition's
	// leader has opened it is dropped, as with Kafka. One acknowledged
	// record first makes sure it is open.
	if err := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic)).ProduceSync(ctx, &kgo.Record{Value: []byte("0")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	prod := newClient(t, s.KafkaAddr(), kgo.DefaultProduceTopic(topic), kgo.RequiredAcks(kgo.NoAck()), kgo.DisableIdempotentWrite())
	const n = 2000
	for i := 1; i < n; i++ {
		prod.Produce(ctx, &kgo.Record{Value: []byte(strconv.Itoa(i))}, nil)
	}
	if err := prod.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	cons := newClient(t, s.KafkaAddr(), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	next := 0
	for next < n {
		fs := cons.PollFetches(ctx)
		if ctx.Err() != nil {
			t.Fatalf("got %d of %d acks=0 records", next, n)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if string(r.Value) != strconv.Itoa(next) || r.Offset != int64(next) {
				t.Fatalf("record %d: value %s offset %d", next, r.Value, r.Offset)
			}
			next++
		})
	}
}
