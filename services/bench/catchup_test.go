package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// TestCatchUpReadsTheTopicFromItsStart: after a produce-only run, CatchUp
// reads every record back from offset 0 and counts their value bytes; a
// topic holding fewer records than wanted ends with the context's error,
// naming how far it got.
func TestCatchUpReadsTheTopicFromItsStart(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	const n, size = 2000, 100
	if _, err := Run(ctx, Config{Brokers: c.ListenAddrs(), Topic: "catch", Partitions: 3, Records: n, RecordBytes: size,
		CreateTopic: true, ProduceOnly: true}); err != nil {
		t.Fatal(err)
	}
	res, err := CatchUp(ctx, c.ListenAddrs(), "catch", n)
	if err != nil {
		t.Fatal(err)
	}
	if res.Records != n || res.Bytes != n*size || res.Elapsed <= 0 {
		t.Fatalf("caught up %+v, want %d records of %d bytes", res, n, size)
	}
	if !strings.HasPrefix(res.String(), "2000 records in ") {
		t.Errorf("summary %q", res.String())
	}
	short, cancelShort := context.WithTimeout(ctx, 2*time.Second)
	defer cancelShort()
	res, err = CatchUp(short, c.ListenAddrs(), "catch", n+1)
	if err == nil || !strings.Contains(err.Error(), "2000 of 2001 records") {
		t.Fatalf("reading past the end: %+v, %v; want the deadline after 2000 of 2001 records", res, err)
	}
}
