package bench

import (
	"testing"
	"time"
)

func TestPercentiles(t *testing.T) {
	var d []time.Duration
	for i := 1000; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	p50, p99, p999 := percentiles(d)
	if p50 != 500*time.Millisecond || p99 != 990*time.Millisecond || p999 != 999*time.Millisecond {
		t.Fatalf("p50 %v p99 %v p999 %v", p50, p99, p999)
	}
}
