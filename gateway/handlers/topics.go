package handlers

import (
	"context"
	"time"
)

// waitRevision waits until this gateway's cache reflects rev, so that the
// client's next Metadata on this gateway sees its change. timeoutMs <= 0
// waits up to 10 s.
func (h *Handlers) waitRevision(ctx context.Context, rev int64, timeoutMs int32) error {
	return h.ops.WaitRevision(ctx, rev, time.Duration(timeoutMs)*time.Millisecond)
}
