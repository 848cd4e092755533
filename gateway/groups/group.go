package groups

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"sort"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// state is a classic group's state, named as Kafka names them in
// DescribeGroups and ListGroups.
type state int8

const (
	stateEmpty state = iota
	statePreparingRebalance
	stateCompletingRebalance
	stateStable
	stateDead
)

func (s state) String() string {
	switch s {
	case stateEmpty:
		return "Empty"
	case statePreparingRebalance:
		return "PreparingRebalance"
	case stateCompletingRebalance:
		return "CompletingRebalance"
	case stateStable:
		return "Stable"
	default:
		return "Dead"
	}
}

// Client identifies the connection a request came from.
type Client struct {
	ID   string // Kafka client.id
	Host string // remote address
}

type member struct {
	id               string
	instanceID       *string
	clientID         string
	clientHost       string
	sessionTimeout   time.Duration
	rebalanceTimeout time.Duration
	protocols        []meta.GroupProtocol
	assignment       []byte

	// A parked JoinGroup or SyncGroup: its request (for the response
	// version) and where its answer goes. At most one at a time.
	joinReq *kmsg.JoinGroupRequest
	syncReq *kmsg.SyncGroupRequest
	reply   chan kmsg.Response

	t *time.Timer // session timeout
}

func (m *member) waitingJoin() bool { return m.joinReq != nil }

func (m *member) metadataFor(protocol string) []byte {
	for _, p := range m.protocols {
		if p.Name == protocol {
			return p.Metadata
		}
	}
	return nil
}

type group struct {
	c     *Coordinator
	name  string
	guard meta.ShardGuard

	mu           sync.Mutex
	state        state
	protocolType string
	protocol     string
	leader       string
	generation   int32
	members      map[string]*member
	pending      map[string]*member // v4+ joiners told MEMBER_ID_REQUIRED
	static       map[string]string  // group.instance.id -> member id
	protocols    map[string]int     // protocol name -> members supporting it
	nJoining     int                // members parked in JoinGroup
	pendingSync  map[string]bool    // members that were answered JoinGroup but have not synced
	tRebalance   *time.Timer
	tPendingSync *time.Timer
	offsets      map[meta.TopicPartition]meta.GroupOffset
	persisted    bool // the group's meta key exists in etcd
	// txnPending is the offsets committed inside transactions that are
	// not decided (or whose marker is not applied yet), by producer id
	// (txnoffsets.go); as in etcd.
	txnPending map[int64]*meta.GroupTxnOffsets
}

// newGroup builds a group from its persisted state (gm nil: a new group).
// A group persisted mid-rebalance resumes in PreparingRebalance: its
// members' heartbeats are answered REBALANCE_IN_PROGRESS and they rejoin.
func newGroup(c *Coordinator, name string, guard meta.ShardGuard, gm *meta.GroupMeta, offsets map[meta.TopicPartition]meta.GroupOffset) *group {
	g := &group{
		c: c, name: name, guard: guard,
		members: map[string]*member{}, pending: map[string]*member{},
		static: map[string]string{}, protocols: map[string]int{}, offsets: offsets,
		txnPending: map[int64]*meta.GroupTxnOffsets{},
	}
	if g.offsets == nil {
		g.offsets = map[meta.TopicPartition]meta.GroupOffset{}
	}
	if gm == nil {
		return g
	}
	g.persisted = true
	g.protocolType, g.protocol, g.leader, g.generation = gm.ProtocolType, gm.Protocol, gm.Leader, gm.Generation
	for _, pm := range gm.Members {
		m := &member{
			id: pm.ID, instanceID: pm.InstanceID, clientID: pm.ClientID, clientHost: pm.ClientHost,
			sessionTimeout:   time.Duration(pm.SessionTimeoutMs) * time.Millisecond,
			rebalanceTimeout: time.Duration(pm.RebalanceTimeoutMs) * time.Millisecond,
			protocols:        pm.Protocols, assignment: pm.Assignment,
		}
		g.addMember(m)
	}
	switch {
	case len(g.members) == 0:
		g.state = stateEmpty
	case gm.Stable:
		g.state = stateStable
	default:
		g.state = statePreparingRebalance
		g.armRebalanceTimer()
	}
	for _, m := range g.members {
		g.heartbeat(m)
	}
	return g
}

func (g *group) isDead() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.state == stateDead
}

// after runs fn under g.mu after d, unless the group died meanwhile.
func (g *group) after(d time.Duration, fn func()) *time.Timer {
	return time.AfterFunc(d, func() {
		g.mu.Lock()
		defer g.mu.Unlock()
		if g.state != stateDead {
			fn()
		}
	})
}

// kill answers every parked call with code and stops all timers. The
// coordinator reloads the group from etcd on its next request.
func (g *group) kill(code *kerr.Error) {
	if g.state == stateDead {
		return
	}
	g.state = stateDead
	stop(g.tRebalance)
	stop(g.tPendingSync)
	for _, m := range g.members {
		stop(m.t)
		g.fail(m, code)
	}
	for _, m := range g.pending {
		stop(m.t)
	}
}

func stop(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// heartbeat (re)starts m's session timer. A member parked in JoinGroup or
// SyncGroup does not expire (as in Kafka): the rebalance timeouts bound it.
func (g *group) heartbeat(m *member) {
	stop(m.t)
	m.t = g.after(m.sessionTimeout, func() {
		if g.members[m.id] != m {
			return
		}
		if m.reply != nil {
			g.heartbeat(m)
			return
		}
		g.c.log.Info("group member session expired", "group", g.name, "member", m.id)
		g.removeMember(m)
		g.rebalance()
	})
}

// park makes m wait for an answer to req (a JoinGroup or SyncGroup). A
// call m had parked already is answered REBALANCE_IN_PROGRESS: the client
// gave up on it.
func (g *group) park(m *member, join *kmsg.JoinGroupRequest, sync *kmsg.SyncGroupRequest) chan kmsg.Response {
	if m.reply != nil {
		g.fail(m, kerr.RebalanceInProgress)
	}
	m.joinReq, m.syncReq = join, sync
	m.reply = make(chan kmsg.Response, 1)
	return m.reply
}

// answer delivers resp to m's parked call.
func (g *group) answer(m *member, resp kmsg.Response) {
	if m.reply == nil {
		return
	}
	if m.joinReq != nil {
		g.nJoining--
	}
	m.reply <- resp
	m.reply, m.joinReq, m.syncReq = nil, nil, nil
	if g.state != stateDead && g.members[m.id] == m {
		g.heartbeat(m)
	}
}

// fail answers m's parked call, if any, with code.
func (g *group) fail(m *member, code *kerr.Error) {
	switch {
	case m.joinReq != nil:
		resp := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		resp.ErrorCode, resp.Generation, resp.MemberID = code.Code, -1, m.id
		g.answer(m, resp)
	case m.syncReq != nil:
		resp := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ErrorCode = code.Code
		g.answer(m, resp)
	}
}

func (g *group) addMember(m *member) {
	g.members[m.id] = m
	for _, p := range m.protocols {
		g.protocols[p.Name]++
	}
	if m.instanceID != nil {
		g.static[*m.instanceID] = m.id
	}
}

// removeMember drops m without rebalancing.
func (g *group) removeMember(m *member) {
	for _, p := range m.protocols {
		g.protocols[p.Name]--
		if g.protocols[p.Name] <= 0 {
			delete(g.protocols, p.Name)
		}
	}
	delete(g.members, m.id)
	if m.instanceID != nil && g.static[*m.instanceID] == m.id {
		delete(g.static, *m.instanceID)
	}
	stop(m.t)
	g.fail(m, kerr.UnknownMemberID)
	delete(g.pendingSync, m.id)
}

// setProtocols takes a join's protocols and timeouts for m, keeping the
// group's protocol counts right if m is a member already.
func (g *group) setProtocols(m *member, req *kmsg.JoinGroupRequest) {
	in := g.members[m.id] == m
	if in {
		for _, p := range m.protocols {
			g.protocols[p.Name]--
		}
	}
	m.protocols = make([]meta.GroupProtocol, len(req.Protocols))
	for i, p := range req.Protocols {
		m.protocols[i] = meta.GroupProtocol{Name: p.Name, Metadata: p.Metadata}
		if in {
			g.protocols[p.Name]++
		}
	}
	m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
	m.rebalanceTimeout = time.Duration(req.RebalanceTimeoutMillis) * time.Millisecond
}

func (g *group) validateInstanceID(instanceID *string, memberID string) *kerr.Error {
	if instanceID == nil {
		return nil
	}
	known, ok := g.static[*instanceID]
	switch {
	case !ok:
		return kerr.UnknownMemberID
	case known != memberID:
		return kerr.FencedInstanceID
	}
	return nil
}

// protocolsMatch reports whether a joiner's protocols fit the group. An
// empty group takes the joiner's protocol type.
func (g *group) protocolsMatch(req *kmsg.JoinGroupRequest) bool {
	if len(g.members) == 0 {
		g.protocolType = req.ProtocolType
		return true
	}
	if req.ProtocolType != g.protocolType {
		return false
	}
	for _, p := range req.Protocols {
		if g.protocols[p.Name] == len(g.members) {
			return true
		}
	}
	return false
}

func sameProtocols(m *member, req *kmsg.JoinGroupRequest) bool {
	if len(m.protocols) != len(req.Protocols) {
		return false
	}
	for i, p := range req.Protocols {
		if m.protocols[i].Name != p.Name || !bytes.Equal(m.protocols[i].Metadata, p.Metadata) {
			return false
		}
	}
	return true
}

func newMemberID(clientID string, instanceID *string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	prefix := clientID
	if instanceID != nil {
		prefix = *instanceID
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// join handles a JoinGroup with g.mu held. It returns either an answer
// now or a channel the answer arrives on.
func (g *group) join(cl Client, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) (*kmsg.JoinGroupResponse, chan kmsg.Response) {
	fail := func(e *kerr.Error) (*kmsg.JoinGroupResponse, chan kmsg.Response) {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	if g.state == stateDead {
		return fail(kerr.NotCoordinator)
	}
	if !g.protocolsMatch(req) {
		return fail(kerr.InconsistentGroupProtocol)
	}
	if req.MemberID == "" {
		if req.InstanceID != nil {
			if old, ok := g.static[*req.InstanceID]; ok {
				return g.replaceStatic(cl, old, req, resp)
			}
		}
		if len(g.members)+len(g.pending) >= g.c.cfg.MaxGroupSize {
			return fail(kerr.GroupMaxSizeReached)
		}
		m := &member{id: newMemberID(cl.ID, req.InstanceID), instanceID: req.InstanceID, clientID: cl.ID, clientHost: cl.Host}
		resp.MemberID = m.id
		// KIP-394: a v4+ dynamic member first learns its id and joins
		// again with it, so a client that times out does not leave a
		// ghost member behind.
		if req.Version >= 4 && req.InstanceID == nil {
			g.pending[m.id] = m
			m.sessionTimeout = time.Duration(req.SessionTimeoutMillis) * time.Millisecond
			m.t = g.after(m.sessionTimeout, func() { delete(g.pending, m.id) })
			return fail(kerr.MemberIDRequired)
		}
		return nil, g.addAndRebalance(m, req)
	}
	if e := g.validateInstanceID(req.InstanceID, req.MemberID); e != nil {
		return fail(e)
	}
	if m, ok := g.pending[req.MemberID]; ok {
		delete(g.pending, m.id)
		stop(m.t)
		return nil, g.addAndRebalance(m, req)
	}
	m, ok := g.members[req.MemberID]
	if !ok {
		return fail(kerr.UnknownMemberID)
	}
	switch g.state {
	case statePreparingRebalance:
		return nil, g.rejoin(m, req)
	case stateCompletingRebalance:
		if sameProtocols(m, req) {
			// The member missed our answer: repeat it.
			g.fillJoin(m, resp)
			return resp, nil
		}
		return nil, g.rejoin(m, req)
	case stateStable:
		if g.leader != m.id && sameProtocols(m, req) {
			g.fillJoin(m, resp)
			return resp, nil
		}
		return nil, g.rejoin(m, req)
	default:
		return fail(kerr.UnknownMemberID)
	}
}

// replaceStatic handles KIP-345: a static member restarting with its
// group.instance.id takes over its old member's place and assignment,
// without a rebalance if nothing changed.
func (g *group) replaceStatic(cl Client, oldID string, req *kmsg.JoinGroupRequest, resp *kmsg.JoinGroupResponse) (*kmsg.JoinGroupResponse, chan kmsg.Response) {
	old := g.members[oldID]
	m := &member{id: newMemberID(cl.ID, req.InstanceID), instanceID: req.InstanceID, clientID: cl.ID, clientHost: cl.Host}
	resp.MemberID = m.id
	if old == nil {
		delete(g.static, *req.InstanceID)
		return nil, g.addAndRebalance(m, req)
	}
	g.fail(old, kerr.FencedInstanceID)
	wasLeader := g.leader == old.id
	unchanged := g.state == stateStable && sameProtocols(old, req)
	m.assignment = old.assignment
	g.removeMember(old)
	g.setProtocols(m, req)
	g.addMember(m)
	if unchanged {
		if wasLeader {
			g.leader = m.id
		}
		if err := g.persist(); err != nil {
			resp.ErrorCode = g.c.persistFailed(g, err).Code
			return resp, nil
		}
		g.heartbeat(m)
		g.fillJoin(m, resp)
		// KIP-814: a returning leader keeps the current assignment.
		resp.SkipAssignment = resp.LeaderID == m.id
		return resp, nil
	}
	ch := g.park(m, req, nil)
	g.nJoining++
	g.rebalance()
	return nil, ch
}

func (g *group) addAndRebalance(m *member, req *kmsg.JoinGroupRequest) chan kmsg.Response {
	g.setProtocols(m, req)
	g.addMember(m)
	ch := g.park(m, req, nil)
	g.nJoining++
	g.rebalance()
	return ch
}

func (g *group) rejoin(m *member, req *kmsg.JoinGroupRequest) chan kmsg.Response {
	g.setProtocols(m, req)
	ch := g.park(m, req, nil)
	g.nJoining++
	g.rebalance()
	return ch
}

// rebalance moves the group to PreparingRebalance. It completes at once
// when every member has rejoined, otherwise after the longest rebalance
// timeout, dropping the members that did not rejoin.
func (g *group) rebalance() {
	if g.state == stateCompletingRebalance {
		for _, m := range g.members {
			m.assignment = nil
			if m.syncReq != nil {
				g.fail(m, kerr.RebalanceInProgress)
			}
		}
	}
	g.state = statePreparingRebalance
	g.clearPendingSync()
	if g.nJoining >= len(g.members) {
		g.completeRebalance()
		return
	}
	g.armRebalanceTimer()
}

func (g *group) armRebalanceTimer() {
	stop(g.tRebalance)
	gen := g.generation
	g.tRebalance = g.after(g.maxRebalanceTimeout(), func() {
		if g.generation == gen {
			g.completeRebalance()
		}
	})
}

func (g *group) maxRebalanceTimeout() time.Duration {
	var d time.Duration
	for _, m := range g.members {
		d = max(d, m.rebalanceTimeout)
	}
	return max(d, time.Second)
}

// completeRebalance ends the join phase: members that did not rejoin are
// dropped, the generation advances, a protocol is chosen and every joined
// member is answered (the leader with everyone's metadata).
func (g *group) completeRebalance() {
	if g.state != statePreparingRebalance {
		return
	}
	stop(g.tRebalance)
	g.tRebalance = nil
	leaderStays := false
	for _, m := range g.members {
		if !m.waitingJoin() {
			g.removeMember(m)
			continue
		}
		leaderStays = leaderStays || m.id == g.leader
	}
	g.generation++
	if g.generation <= 0 {
		g.generation = 1
	}
	if len(g.members) == 0 {
		g.state, g.leader, g.protocol = stateEmpty, "", ""
		if err := g.persist(); err != nil {
			g.c.persistFailed(g, err)
		}
		return
	}
	g.protocol = g.chooseProtocol()
	if !leaderStays {
		ids := make([]string, 0, len(g.members))
		for id := range g.members {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		g.leader = ids[0]
	}
	g.state = stateCompletingRebalance
	if err := g.persist(); err != nil {
		g.c.persistFailed(g, err)
		return
	}
	g.pendingSync = make(map[string]bool, len(g.members))
	for _, m := range g.members {
		g.pendingSync[m.id] = true
		resp := m.joinReq.ResponseKind().(*kmsg.JoinGroupResponse)
		g.fillJoin(m, resp)
		g.answer(m, resp)
	}
	gen := g.generation
	stop(g.tPendingSync)
	g.tPendingSync = g.after(g.maxRebalanceTimeout(), func() {
		if g.generation != gen || len(g.pendingSync) == 0 {
			return
		}
		for id := range g.pendingSync {
			if m := g.members[id]; m != nil {
				g.removeMember(m)
			}
		}
		g.pendingSync = nil
		g.rebalance()
	})
}

// chooseProtocol is Kafka's vote: among protocols every member supports,
// each member votes for the first of its own list.
func (g *group) chooseProtocol() string {
	votes := map[string]int{}
	for _, m := range g.members {
		for _, p := range m.protocols {
			if g.protocols[p.Name] == len(g.members) {
				votes[p.Name]++
				break
			}
		}
	}
	best, bestVotes := "", 0
	for p, v := range votes {
		if v > bestVotes || v == bestVotes && p < best {
			best, bestVotes = p, v
		}
	}
	return best
}

func (g *group) fillJoin(m *member, resp *kmsg.JoinGroupResponse) {
	resp.Generation = g.generation
	resp.ProtocolType = kmsg.StringPtr(g.protocolType)
	resp.Protocol = kmsg.StringPtr(g.protocol)
	resp.LeaderID = g.leader
	resp.MemberID = m.id
	if g.leader != m.id {
		return
	}
	ids := make([]string, 0, len(g.members))
	for id := range g.members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		o := g.members[id]
		rm := kmsg.NewJoinGroupResponseMember()
		rm.MemberID, rm.InstanceID, rm.ProtocolMetadata = o.id, o.instanceID, o.metadataFor(g.protocol)
		resp.Members = append(resp.Members, rm)
	}
}

func (g *group) clearPendingSync() {
	g.pendingSync = nil
	stop(g.tPendingSync)
	g.tPendingSync = nil
}

// sync handles a SyncGroup with g.mu held.
func (g *group) sync(req *kmsg.SyncGroupRequest, resp *kmsg.SyncGroupResponse) (*kmsg.SyncGroupResponse, chan kmsg.Response) {
	fail := func(e *kerr.Error) (*kmsg.SyncGroupResponse, chan kmsg.Response) {
		resp.ErrorCode = e.Code
		return resp, nil
	}
	if g.state == stateDead {
		return fail(kerr.NotCoordinator)
	}
	if e := g.validateInstanceID(req.InstanceID, req.MemberID); e != nil {
		return fail(e)
	}
	m, ok := g.members[req.MemberID]
	switch {
	case !ok:
		return fail(kerr.UnknownMemberID)
	case req.Generation != g.generation:
		return fail(kerr.IllegalGeneration)
	case req.ProtocolType != nil && *req.ProtocolType != g.protocolType,
		req.Protocol != nil && *req.Protocol != g.protocol:
		return fail(kerr.InconsistentGroupProtocol)
	}
	switch g.state {
	case statePreparingRebalance:
		return fail(kerr.RebalanceInProgress)
	case stateCompletingRebalance:
		delete(g.pendingSync, m.id)
		ch := g.park(m, nil, req)
		if m.id == g.leader {
			g.completeSync(req)
		}
		return nil, ch
	case stateStable:
		g.heartbeat(m)
		resp.ProtocolType = kmsg.StringPtr(g.protocolType)
		resp.Protocol = kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = g.assignmentOrEmpty(m.assignment)
		return resp, nil
	default:
		return fail(kerr.UnknownMemberID)
	}
}

// completeSync stores the leader's assignment, persists the group and
// answers every member parked in SyncGroup: the group is Stable.
func (g *group) completeSync(req *kmsg.SyncGroupRequest) {
	for _, m := range g.members {
		m.assignment = nil
	}
	for _, a := range req.GroupAssignment {
		if m, ok := g.members[a.MemberID]; ok {
			m.assignment = a.MemberAssignment
		}
	}
	for _, m := range g.members {
		m.assignment = g.assignmentOrEmpty(m.assignment)
	}
	g.state = stateStable
	if err := g.persist(); err != nil {
		g.c.persistFailed(g, err)
		return
	}
	g.clearPendingSync()
	for _, m := range g.members {
		if m.syncReq == nil {
			continue
		}
		resp := m.syncReq.ResponseKind().(*kmsg.SyncGroupResponse)
		resp.ProtocolType = kmsg.StringPtr(g.protocolType)
		resp.Protocol = kmsg.StringPtr(g.protocol)
		resp.MemberAssignment = m.assignment
		g.answer(m, resp)
	}
}

// emptyConsumerAssignment: some clients cannot decode a zero-length
// assignment of the "consumer" protocol (kfake does the same).
var emptyConsumerAssignment = new(kmsg.ConsumerMemberAssignment).AppendTo(nil)

func (g *group) assignmentOrEmpty(a []byte) []byte {
	if len(a) == 0 && g.protocolType == "consumer" {
		return append([]byte(nil), emptyConsumerAssignment...)
	}
	return a
}

// heartbeatReq handles a Heartbeat with g.mu held.
func (g *group) heartbeatReq(req *kmsg.HeartbeatRequest) *kerr.Error {
	if g.state == stateDead {
		return kerr.NotCoordinator
	}
	if e := g.validateInstanceID(req.InstanceID, req.MemberID); e != nil {
		return e
	}
	m, ok := g.members[req.MemberID]
	switch {
	case !ok:
		return kerr.UnknownMemberID
	case req.Generation != g.generation:
		return kerr.IllegalGeneration
	}
	switch g.state {
	case statePreparingRebalance:
		g.heartbeat(m)
		return kerr.RebalanceInProgress
	case stateCompletingRebalance, stateStable:
		g.heartbeat(m)
		return nil
	default:
		return kerr.UnknownMemberID
	}
}

// leave handles a LeaveGroup with g.mu held; one rebalance for the batch.
func (g *group) leave(req *kmsg.LeaveGroupRequest, resp *kmsg.LeaveGroupResponse) {
	if g.state == stateDead {
		resp.ErrorCode = kerr.NotCoordinator.Code
		return
	}
	left := false
	for _, rm := range req.Members {
		r := kmsg.NewLeaveGroupResponseMember()
		r.MemberID, r.InstanceID = rm.MemberID, rm.InstanceID
		id := rm.MemberID
		if rm.InstanceID != nil {
			known, ok := g.static[*rm.InstanceID]
			switch {
			case !ok:
				r.ErrorCode = kerr.UnknownMemberID.Code
			case id != "" && id != known:
				r.ErrorCode = kerr.FencedInstanceID.Code
			}
			id = known
		}
		if r.ErrorCode == 0 {
			if m, ok := g.members[id]; ok {
				g.removeMember(m)
				left = true
			} else if p, ok := g.pending[id]; ok {
				delete(g.pending, id)
				stop(p.t)
			} else {
				r.ErrorCode = kerr.UnknownMemberID.Code
			}
		}
		resp.Members = append(resp.Members, r)
	}
	if left {
		g.rebalance()
	}
}

// persist writes the group's membership, guarded by the shard key.
func (g *group) persist() error {
	ctx, cancel := context.WithTimeout(context.Background(), persistTimeout)
	defer cancel()
	if err := g.c.store.SaveGroupMeta(ctx, g.guard, g.snapshot()); err != nil {
		return err
	}
	g.persisted = true
	return nil
}

func (g *group) snapshot() *meta.GroupMeta {
	gm := &meta.GroupMeta{
		Group: g.name, ProtocolType: g.protocolType, Protocol: g.protocol, Leader: g.leader,
		Generation: g.generation, Stable: g.state == stateStable || g.state == stateEmpty,
	}
	for _, m := range g.members {
		gm.Members = append(gm.Members, meta.GroupMember{
			ID: m.id, InstanceID: m.instanceID, ClientID: m.clientID, ClientHost: m.clientHost,
			SessionTimeoutMs:   int32(m.sessionTimeout / time.Millisecond),
			RebalanceTimeoutMs: int32(m.rebalanceTimeout / time.Millisecond),
			Protocols:          m.protocols, Assignment: m.assignment,
		})
	}
	sort.Slice(gm.Members, func(i, j int) bool { return gm.Members[i].ID < gm.Members[j].ID })
	return gm
}

// subscribedTopics are the topics the members of a "consumer" group
// subscribe to (from their protocol metadata).
func (g *group) subscribedTopics() map[string]bool {
	out := map[string]bool{}
	for _, m := range g.members {
		var mm kmsg.ConsumerMemberMetadata
		if err := mm.ReadFrom(m.metadataFor(g.protocol)); err != nil {
			continue
		}
		for _, t := range mm.Topics {
			out[t] = true
		}
	}
	return out
}
