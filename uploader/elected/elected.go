// Package elected runs a background job on exactly one uploader of the
// fleet at a time: candidates campaign in an etcd concurrency.Election with
// their uploader's session, and the elected one runs the job's passes until
// its session ends or it is stopped. The garbage collector (package gc) and
// the merger (package merge) are such jobs.
//
// Election gives "one at a time" in the common case only (a paused leader
// may run one more pass after losing its lease), so jobs must be safe when
// two passes overlap: the collector deletes only garbage, the merger's
// swaps are fenced transactions.
package elected

import (
	"context"
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/client/v3/concurrency"
)

// ErrSessionLost is returned by Run when the etcd session ends.
var ErrSessionLost = errors.New("etcd session lost")

// Job is a job run by the elected candidate.
type Job struct {
	// Name names the job in logs.
	Name string
	// Key is the election's etcd key; ID is this candidate's value.
	Key, ID string
	// Interval is the time between passes.
	Interval time.Duration
	// Pass runs one pass; Run calls it at once when elected, then every
	// Interval.
	Pass   func(ctx context.Context)
	Logger *slog.Logger
	// Leader, if set, is true while this candidate is elected.
	Leader *atomic.Bool
}

// Run campaigns with sess and, once elected, runs passes until ctx ends
// (it resigns and returns nil) or the session ends (ErrSessionLost).
func Run(ctx context.Context, sess *concurrency.Session, j Job) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-sess.Done():
			cancel()
		case <-ctx.Done():
		}
	}()
	ended := func() error {
		select {
		case <-sess.Done():
			return ErrSessionLost
		default:
			return nil
		}
	}
	el := concurrency.NewElection(sess, j.Key)
	for {
		err := el.Campaign(ctx, j.ID)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ended()
		}
		j.Logger.Warn(j.Name+" election campaign failed; retrying", "err", err)
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return ended()
		}
	}
	if j.Leader != nil {
		j.Leader.Store(true)
		defer j.Leader.Store(false)
	}
	defer func() {
		if ended() != nil {
			return // the lease is gone, and the election key with it
		}
		rctx, rcancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer rcancel()
		_ = el.Resign(rctx)
	}()
	j.Logger.Info("elected to run "+j.Name, "id", j.ID, "interval", j.Interval)
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return ended()
		case <-timer.C:
		}
		j.Pass(ctx)
		if ctx.Err() != nil {
			return ended()
		}
		timer.Reset(j.Interval)
	}
}
