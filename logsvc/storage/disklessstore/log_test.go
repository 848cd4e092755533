package disklessstore

import (
	"testing"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
)

// TestTopicBatchDelay: a topic's batch timeout becomes the buffer's delay;
// one stored before meta.MaxBatchTimeout existed (or written to etcd by
// hand) is held to it, so its produces are still answered within a
// client's request timeout.
func TestTopicBatchDelay(t *testing.T) {
	for v, want := range map[string]time.Duration{
		"":                    0, // unset: the node's --diskless-batch-timeout
		"0":                   time.Nanosecond,
		"250":                 250 * time.Millisecond,
		"3600000":             meta.MaxBatchTimeout,
		"9223372036854775807": meta.MaxBatchTimeout, // would overflow as a Duration
		"-5":                  0,
		"soon":                0,
	} {
		topic := meta.Topic{Configs: map[string]string{}}
		if v != "" {
			topic.Configs[meta.ConfigBatchTimeoutMs] = v
		}
		if got := time.Duration(topicBatchDelay(topic)); got != want {
			t.Errorf("%q: %v, want %v", v, got, want)
		}
	}
}
