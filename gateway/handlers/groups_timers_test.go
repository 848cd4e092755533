package handlers_test

import (
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// TestGroupTimeouts: a member that stops heartbeating is dropped after its
// session timeout, and a member that does not rejoin a rebalance within the
// rebalance timeout is dropped from the new generation, which completes
// with the members that did rejoin.
func TestGroupTimeouts(t *testing.T) {
	c := startCluster(t)
	c.mustCreate(c.manual, "grp-topic", 2)

	t.Run("SessionTimeout", func(t *testing.T) {
		const group = "session-timeout"
		g, _ := c.coordinator(group)
		req := joinReq(group, "", kmsg.StringPtr("silent"))
		req.SessionTimeoutMillis, req.RebalanceTimeoutMillis = 300, 300
		joined := c.raw(g, req).(*kmsg.JoinGroupResponse)
		wantCode(t, "join", joined.ErrorCode, nil)
		sync := kmsg.NewPtrSyncGroupRequest()
		sync.Version, sync.Group, sync.MemberID, sync.Generation, sync.InstanceID = 5, group, joined.MemberID, joined.Generation, req.InstanceID
		wantCode(t, "sync", c.raw(g, sync).(*kmsg.SyncGroupResponse).ErrorCode, nil)
		desc := kmsg.NewPtrDescribeGroupsRequest()
		desc.Version, desc.Groups = 5, []string{group}
		if dg := c.raw(g, desc).(*kmsg.DescribeGroupsResponse).Groups[0]; dg.State != "Stable" {
			t.Fatalf("state %s right after sync, want Stable", dg.State)
		}
		// No heartbeats: the member expires and the group empties.
		waitFor(t, func() bool { return c.raw(g, desc).(*kmsg.DescribeGroupsResponse).Groups[0].State == "Empty" })
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.MemberID, hb.Generation = 4, group, joined.MemberID, joined.Generation
		wantCode(t, "heartbeat after expiry", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.UnknownMemberID)
	})

	t.Run("RebalanceTimeout", func(t *testing.T) {
		const group = "rebalance-timeout"
		g, _ := c.coordinator(group)
		join := func(instance string) *kmsg.JoinGroupRequest {
			r := joinReq(group, "", kmsg.StringPtr(instance))
			r.SessionTimeoutMillis, r.RebalanceTimeoutMillis = 10000, 500
			return r
		}
		a := c.raw(g, join("a")).(*kmsg.JoinGroupResponse)
		wantCode(t, "join a", a.ErrorCode, nil)
		// b's join parks until a rejoins or the rebalance timeout passes;
		// a never rejoins: it is silent from here on.
		start := time.Now()
		b := c.raw(g, join("b")).(*kmsg.JoinGroupResponse)
		wantCode(t, "join b", b.ErrorCode, nil)
		if b.Generation != a.Generation+1 || b.LeaderID != b.MemberID || len(b.Members) != 1 {
			t.Fatalf("b: generation %d (a had %d), leader %q, %d members; want the next generation led by b alone", b.Generation, a.Generation, b.LeaderID, len(b.Members))
		}
		if waited := time.Since(start); waited < 400*time.Millisecond {
			t.Fatalf("the rebalance completed after %v, before a's rebalance timeout", waited)
		}
		hb := kmsg.NewPtrHeartbeatRequest()
		hb.Version, hb.Group, hb.MemberID, hb.Generation, hb.InstanceID = 4, group, a.MemberID, a.Generation, kmsg.StringPtr("a")
		wantCode(t, "heartbeat of the dropped member", c.raw(g, hb).(*kmsg.HeartbeatResponse).ErrorCode, kerr.UnknownMemberID)
	})
}
