// Package gateway assembles a Streamline gateway: the Kafka protocol server
// (kafkaserver), the per-API handlers (handlers), the log-service connection
// pool (routing), the consumer-group coordinator (groups), the transaction
// coordinator running on the same shards (txns) and the etcd metadata
// cache, plus the gateway's
// registration in etcd under a lease, which is what makes it a "broker" in
// every gateway's Metadata answers.
//
// A Gateway is embeddable: the all-in-one process and tests start it
// in-process with New, Start, Ready and an idempotent Close.
package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/gateway/handlers"
	"github.com/streamline-dev/streamline/gateway/kafkaserver"
	"github.com/streamline-dev/streamline/gateway/ops"
	"github.com/streamline-dev/streamline/gateway/routing"
	"github.com/streamline-dev/streamline/gateway/txns"
	"github.com/streamline-dev/streamline/shared/meta"
	"github.com/streamline-dev/streamline/shared/telemetry"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// Gateway is one running gateway.
type Gateway struct {
	cfg   Config
	log   *slog.Logger
	store *meta.Store
	cache *meta.Cache

	ready chan struct{}

	mu      sync.Mutex // held by Start and Close: guards the fields below
	started bool
	closed  bool
	pool    *routing.Pool
	groups  *groups.Coordinator
	txns    *txns.Coordinator
	remote  *txns.Remote
	ops     *ops.Ops
	unreg   func() // withdraws the group metrics
	admin   *adminServer
	server  *kafkaserver.Server
	self    meta.Gateway

	runCtx    context.Context // lives until Close: etcd session keepalives
	stopRun   context.CancelFunc
	stopKeep  chan struct{}
	keeper    sync.WaitGroup
	closeOnce sync.Once
}

// New validates cfg and returns a gateway that is not started.
func New(cfg Config) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	log := cfg.Logger.With("component", "gateway", "gateway_id", cfg.ID)
	store := meta.NewStore(cfg.Etcd, cfg.EtcdPrefix)
	runCtx, stopRun := context.WithCancel(context.Background())
	return &Gateway{
		cfg: cfg, log: log, store: store, cache: meta.NewCache(store, log),
		ready: make(chan struct{}), runCtx: runCtx, stopRun: stopRun, stopKeep: make(chan struct{}),
	}, nil
}

// Start loads the metadata, starts the Kafka listener and registers the
// gateway in etcd. ctx bounds startup only. On failure everything started
// is stopped again.
func (g *Gateway) Start(ctx context.Context) (err error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.started || g.closed {
		return errors.New("gateway: Start called twice or after Close")
	}
	g.started = true
	defer func() {
		if err != nil {
			g.shutdownLocked()
		}
	}()
	if err := g.cache.Start(ctx); err != nil {
		return fmt.Errorf("gateway: load metadata: %w", err)
	}
	g.pool = routing.New(g.cache, g.log, g.cfg.LocalLogServices, telemetry.GRPCDialOptions(g.cfg.TracerProvider)...)

	ln, err := net.Listen("tcp", g.cfg.ListenAddr)
	if err != nil {
		return fmt.Errorf("gateway: listen %s: %w", g.cfg.ListenAddr, err)
	}
	g.self, err = g.advertised(ln.Addr())
	if err != nil {
		ln.Close()
		return err
	}
	// The admin listener is bound now, served once the gateway is ready:
	// its advertised address goes into the registration.
	var adminLn net.Listener
	if g.cfg.AdminAddr != "" {
		if adminLn, err = net.Listen("tcp", g.cfg.AdminAddr); err != nil {
			ln.Close()
			return fmt.Errorf("gateway: admin listen %s: %w", g.cfg.AdminAddr, err)
		}
		defer func() {
			if err != nil && g.admin == nil {
				adminLn.Close()
			}
		}()
		host, port, aerr := advertise(g.cfg.AdminAddr, adminLn.Addr(), g.cfg.AdvertisedAdminAddr)
		if aerr != nil {
			ln.Close()
			return aerr
		}
		g.self.AdminAddr = net.JoinHostPort(host, strconv.Itoa(int(port)))
	}
	for _, other := range g.cache.Gateways() {
		if other.NodeID == g.cfg.NodeID && other.ID != g.cfg.ID {
			ln.Close()
			return fmt.Errorf("gateway: node id %d is already used by live gateway %q", g.cfg.NodeID, other.ID)
		}
	}
	g.groups, err = groups.New(groups.Config{
		Store: g.store, Cache: g.cache, Etcd: g.cfg.Etcd, GatewayID: g.cfg.ID, SessionTTL: g.cfg.SessionTTL,
		MinSessionTimeout: g.cfg.GroupMinSessionTimeout, MaxSessionTimeout: g.cfg.GroupMaxSessionTimeout, Logger: g.log,
		CommitLatency: telemetry.EtcdCommitDuration(g.cfg.Metrics).WithLabelValues(telemetry.OpGroupOffsets),
	})
	if err != nil {
		ln.Close()
		return err
	}
	g.unreg = registerGroupMetrics(g.cfg.Metrics, g.groups)
	g.ops, err = ops.New(ops.Config{
		Store: g.store, Cache: g.cache, Logs: g.pool, Groups: g.groups, GatewayID: g.cfg.ID,
		DefaultPartitions: g.cfg.DefaultPartitions, DefaultReplicationFactor: g.cfg.DefaultReplicationFactor,
		DefaultStorageMode: g.cfg.DefaultStorageMode,
		TopicDefaults:      g.cfg.TopicDefaults, Logger: g.log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	// The implicit adds of transaction version 2 reach other gateways'
	// coordinators through this gateway's own listener (the client learns
	// the others from Metadata).
	g.remote = txns.NewRemote(ln.Addr().String(), g.log)
	// Before the groups coordinator starts: it registers for the shards
	// the groups coordinator gains and loses.
	g.txns, err = txns.New(txns.Config{
		Store: g.store, Cache: g.cache, Groups: g.groups, Markers: g.ops, GatewayID: g.cfg.ID,
		MaxTimeout: g.cfg.TransactionMaxTimeout, AbortInterval: g.cfg.TransactionAbortInterval,
		IDExpiration: g.cfg.TransactionalIDExpiration, Logger: g.log,
		Failpoint: g.cfg.Failpoint, Remote: g.remote,
	})
	if err != nil {
		ln.Close()
		return err
	}
	h, err := handlers.New(handlers.Config{
		Store: g.store, Cache: g.cache, Logs: g.pool, Groups: g.groups, Txns: g.txns, Ops: g.ops, Self: g.self,
		ClusterID: g.cfg.ClusterID, AutoCreateTopics: g.cfg.AutoCreateTopics,
		DefaultPartitions: g.cfg.DefaultPartitions, DefaultStorageMode: g.cfg.DefaultStorageMode,
		TopicDefaults: g.cfg.TopicDefaults, MaxRequestBytes: g.cfg.MaxRequestBytes, Logger: g.log,
		TransactionVersion: g.cfg.TransactionVersion,
		Tracer:             telemetry.Tracer(g.cfg.TracerProvider, "github.com/streamline-dev/streamline/gateway"), Metrics: handlers.NewMetrics(g.cfg.Metrics),
	})
	if err != nil {
		ln.Close()
		return err
	}
	g.server, err = kafkaserver.New(kafkaserver.Config{
		Listener: ln, Handler: h, MaxRequestBytes: g.cfg.MaxRequestBytes, Logger: g.log,
	})
	if err != nil {
		ln.Close()
		return err
	}
	if err := g.server.Start(); err != nil {
		return err
	}

	// Register only once the listener accepts: other gateways start
	// sending clients here as soon as they see the record.
	sess, err := g.register(ctx)
	if err != nil {
		return err
	}
	g.keeper.Add(1)
	go g.keepRegistered(sess)
	if err := g.waitSelfVisible(ctx); err != nil {
		return fmt.Errorf("gateway: own registration not visible: %w", err)
	}
	// Coordinate groups and transactions only once registered:
	// FindCoordinator answers on other gateways name a gateway from its
	// registration. The transaction coordinator first, so it sees every
	// shard the groups coordinator claims.
	g.txns.Start()
	g.groups.Start()
	claimCtx, cancelClaim := context.WithTimeout(ctx, 5*time.Second)
	g.groups.WaitClaimed(claimCtx)
	cancelClaim()
	if adminLn != nil {
		if g.admin, err = g.startAdmin(adminLn); err != nil {
			return err
		}
	}
	g.log.Info("gateway ready", "listen", ln.Addr().String(), "advertised", fmt.Sprintf("%s:%d", g.self.Host, g.self.Port), "node_id", g.cfg.NodeID)
	close(g.ready)
	return nil
}

// advertised is this gateway's registration record for a bound listener.
func (g *Gateway) advertised(bound net.Addr) (meta.Gateway, error) {
	self := meta.Gateway{ID: g.cfg.ID, NodeID: g.cfg.NodeID, Rack: g.cfg.Rack}
	host, port, err := advertise(g.cfg.ListenAddr, bound, g.cfg.AdvertisedAddr)
	self.Host, self.Port = host, port
	return self, err
}

// advertise is the host and port to tell others for a listener: explicit
// when given; otherwise the listen host (this machine's host name when
// listening on every interface, as Kafka does) and the bound port.
func advertise(listen string, bound net.Addr, explicit string) (string, int32, error) {
	if explicit != "" {
		return splitHostPort(explicit)
	}
	tcp, ok := bound.(*net.TCPAddr)
	if !ok {
		return "", 0, fmt.Errorf("gateway: unexpected listener address %v", bound)
	}
	host, _, _ := net.SplitHostPort(listen)
	if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
		h, err := os.Hostname()
		if err != nil || h == "" {
			h = "localhost"
		}
		host = h
	}
	return host, int32(tcp.Port), nil
}

// register grants a lease (bounded by ctx), keeps it alive until Close
// (runCtx) and puts the gateway's record under it.
func (g *Gateway) register(ctx context.Context) (*concurrency.Session, error) {
	lease, err := g.cfg.Etcd.Grant(ctx, int64(g.cfg.SessionTTL))
	if err != nil {
		return nil, fmt.Errorf("gateway: etcd lease: %w", err)
	}
	sess, err := concurrency.NewSession(g.cfg.Etcd, concurrency.WithLease(lease.ID), concurrency.WithTTL(g.cfg.SessionTTL), concurrency.WithContext(g.runCtx))
	if err != nil {
		return nil, fmt.Errorf("gateway: etcd session: %w", err)
	}
	if err := g.store.RegisterGateway(ctx, sess, g.self); err != nil {
		sess.Close()
		return nil, fmt.Errorf("gateway: register: %w", err)
	}
	return sess, nil
}

// keepRegistered holds the registration: if the lease is lost (etcd
// unreachable for longer than the TTL), it registers again under a new
// one. On Close it revokes the lease, so other gateways drop this one from
// Metadata at once instead of after the TTL.
func (g *Gateway) keepRegistered(sess *concurrency.Session) {
	defer g.keeper.Done()
	for {
		select {
		case <-g.stopKeep:
			if err := sess.Close(); err != nil {
				g.log.Warn("revoking gateway registration failed; it expires with its lease", "err", err)
			}
			return
		case <-sess.Done():
		}
		g.log.Warn("etcd session lost; registering again")
		for {
			ctx, cancel := context.WithTimeout(g.runCtx, 10*time.Second)
			s, err := g.register(ctx)
			cancel()
			if err == nil {
				sess = s
				break
			}
			g.log.Warn("re-registering gateway failed", "err", err)
			select {
			case <-g.stopKeep:
				return
			case <-time.After(time.Second):
			}
		}
	}
}

func (g *Gateway) waitSelfVisible(ctx context.Context) error {
	for {
		ch := g.cache.Changed()
		if slices.ContainsFunc(g.cache.Gateways(), func(o meta.Gateway) bool { return o.ID == g.cfg.ID }) {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Addr is the Kafka listener's bound address (nil before Start).
func (g *Gateway) Addr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.server == nil {
		return nil
	}
	return g.server.Addr()
}

// Advertised is the registration record clients see (valid after Start).
func (g *Gateway) Advertised() meta.Gateway {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.self
}

// AdminAddr is the admin gRPC listener's bound address (nil if none).
func (g *Gateway) AdminAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.admin == nil {
		return nil
	}
	return g.admin.ln.Addr()
}

// GroupShardsSettled reports whether this gateway coordinates exactly the
// consumer-group shards it should for the gateways it sees (false while
// shards move between gateways, for example right after one joins).
func (g *Gateway) GroupShardsSettled() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.groups != nil && g.groups.Settled()
}

// Ready is closed once Start has succeeded.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Close deregisters the gateway, closes client connections (cancelling
// their requests), the log-service connections and the metadata watch. It
// does not close the etcd client. It is safe to call more than once; a
// concurrent Start finishes (bounded by its context) before Close runs.
func (g *Gateway) Close() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.shutdownLocked()
	return nil
}

func (g *Gateway) shutdownLocked() {
	g.closeOnce.Do(func() {
		g.closed = true
		if g.unreg != nil {
			g.unreg()
		}
		if g.txns != nil {
			// Before the shards go: marker writes stop, the next
			// coordinator of each shard completes them.
			g.txns.Close()
		}
		if g.remote != nil {
			g.remote.Close()
		}
		if g.groups != nil {
			// Before deregistering: parked members are told
			// NOT_COORDINATOR and the shards are free at once.
			g.groups.Close()
		}
		if g.admin != nil {
			g.admin.close()
		}
		close(g.stopKeep)
		g.keeper.Wait() // deregister first: clients move to other gateways
		if g.server != nil {
			g.server.Close()
		}
		if g.pool != nil {
			g.pool.Close()
		}
		g.cache.Close()
		g.stopRun()
	})
}
