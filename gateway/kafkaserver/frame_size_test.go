package kafkaserver

import (
	"bytes"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// bigFetchResponse is a fetch response of 3 topics x 4 partitions with
// 256 KiB of record bytes each, and some aborted transactions.
func bigFetchResponse(version int16) *kmsg.FetchResponse {
	resp := kmsg.NewPtrFetchResponse()
	resp.SetVersion(version)
	for _, name := range []string{"a", "topic-b", "a-much-longer-topic-name-c"} {
		t := kmsg.NewFetchResponseTopic()
		t.Topic = name
		for p := range int32(4) {
			rp := kmsg.NewFetchResponseTopicPartition()
			rp.Partition, rp.HighWatermark, rp.LastStableOffset, rp.LogStartOffset = p, 1<<40, 1<<40, 0
			rp.RecordBatches = bytes.Repeat([]byte{byte(p)}, 256<<10)
			for range 3 {
				a := kmsg.NewFetchResponseTopicPartitionAbortedTransaction()
				a.ProducerID, a.FirstOffset = 1<<50, 1<<40
				rp.AbortedTransactions = append(rp.AbortedTransactions, a)
			}
			t.Partitions = append(t.Partitions, rp)
		}
		resp.Topics = append(resp.Topics, t)
	}
	return resp
}

// TestFetchResponseSizeHint: the hint covers the encoded fetch response at
// every version, so AppendResponse allocates its buffer once, and the frame
// is the same as one appended to a buffer grown by append.
func TestFetchResponseSizeHint(t *testing.T) {
	for _, v := range []int16{4, 11, 12, 16} {
		resp := bigFetchResponse(v)
		frame := AppendResponse(nil, 7, resp)
		header := []byte{0, 0, 0, 0, 0, 0, 0, 7} // size (not compared), correlation id
		if resp.IsFlexible() {
			header = append(header, 0) // no header tags
		}
		grown := resp.AppendTo(header)
		if len(frame) != len(grown) || !bytes.Equal(frame[4:], grown[4:]) {
			t.Fatalf("v%d: frame of %d bytes differs from the plain encoding (%d bytes)", v, len(frame), len(grown))
		}
		if hint := responseHeaderMax + responseSizeHint(resp); hint < len(frame) || hint > len(frame)+4096 {
			t.Errorf("v%d: hint %d for a %d-byte frame", v, hint, len(frame))
		}
		allocs := testing.AllocsPerRun(5, func() { _ = AppendResponse(nil, 7, resp) })
		if allocs > 1 {
			t.Errorf("v%d: %.0f allocations per AppendResponse, want 1", v, allocs)
		}
	}
}
