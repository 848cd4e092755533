package cluster

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/streamline-dev/streamline/shared/freeport"
)

// Readiness markers: a line containing one of these means the process
// serves. etcd prints its line on stdout, the services log theirs on stderr.
const (
	EtcdReadyMarker     = "etcd ready at"
	LogsvcReadyMarker   = "log service started"
	GatewayReadyMarker  = "gateway ready"
	UploaderReadyMarker = "uploader started"
)

// ClusterOptions shapes StartCluster. The zero value is the default
// cluster: 3 log-service nodes, 2 gateways, 1 uploader.
type ClusterOptions struct {
	// LogServices is the number of logsvc nodes, logsvc-1..N (default 3).
	LogServices int
	// Gateways is the number of gateways, gateway-1..M with Kafka node ids
	// 1..M (default 2).
	Gateways int
	// Uploaders is the number of uploaders, uploader-1..K (default 1;
	// negative: none).
	Uploaders int
	// SessionTTL is the logsvc and uploader etcd lease TTL (--session-ttl):
	// how long a SIGKILLed or SIGSTOPped node stays registered (default 3s).
	SessionTTL time.Duration
	// AutoCreateTopics sets the gateways' --auto-create-topics.
	AutoCreateTopics bool
	// ExtraArgs appends flags to some processes' command lines, keyed by
	// node name ("logsvc-2") or by kind ("etcd", "logsvc", "gateway",
	// "uploader"); kind flags come first, so a node's own win.
	ExtraArgs map[string][]string
	// Links, when set, routes the connections between processes through
	// proxies the test controls (fault injection: latency, resets,
	// blackholes). StartCluster reserves a listen address per link, calls
	// Links for each before it starts any process, and configures the
	// processes to reach the link's upstream through Listen: every node's
	// etcd endpoint, the gateways' connections to each logsvc (its
	// advertised gRPC address) and the logsvc nodes' connections to each
	// uploader. Links must start serving Listen before it returns.
	Links func(Link)
	// HTTP gives every logsvc, uploader and gateway an --http-addr
	// (/metrics, /healthz, /readyz); see Cluster.HTTPAddr.
	HTTP bool
}

// Link is one proxied connection path of a cluster (ClusterOptions.Links).
type Link struct {
	// From is the connecting node ("gateway-1") or, for a node every
	// process of a kind reaches through one address, the kind ("gateway",
	// "logsvc").
	From string
	// To is the node connected to ("etcd", "logsvc-2", "uploader-1").
	To string
	// Listen is the proxy's address (reserved by StartCluster); Upstream
	// is the real address of To.
	Listen, Upstream string
}

// Name is "from->to".
func (l Link) Name() string { return l.From + "->" + l.To }

func (o ClusterOptions) withDefaults() ClusterOptions {
	if o.LogServices == 0 {
		o.LogServices = 3
	}
	if o.Gateways == 0 {
		o.Gateways = 2
	}
	switch {
	case o.Uploaders == 0:
		o.Uploaders = 1
	case o.Uploaders < 0:
		o.Uploaders = 0
	}
	if o.SessionTTL == 0 {
		o.SessionTTL = 3 * time.Second
	}
	return o
}

// Cluster is a Streamline cluster of separate OS processes on 127.0.0.1:
// one etcd (the streamline-etcd binary), logsvc nodes, uploaders and
// gateways, each with a stable node name. Every process is SIGKILLed when
// the test ends, and the output of all of them is logged if it failed.
type Cluster struct {
	t     testing.TB
	opts  ClusterOptions
	dir   string              // logs/<name>.log live here
	names []string            // in start order
	nodes map[string]*cnode   // by name
	eps   []string            // etcd client URLs
	boot  []string            // gateway Kafka addresses, gateway-1 first
	admin []string            // gateway admin API addresses, gateway-1 first
	data  map[string]string   // data directory by name (etcd, logsvc-N)
	http  map[string]string   // --http-addr by name (ClusterOptions.HTTP)
	kinds map[string][]string // names by kind
}

// cnode is one process of the cluster.
type cnode struct {
	proc   *Process
	kind   string // etcd, logsvc, gateway, uploader
	marker string
	addr   string // the address it serves: etcd client, gRPC, Kafka
}

// StartCluster builds the binaries (once per test binary) and starts the
// cluster, each process waited for until it serves: etcd, then the logsvc
// nodes, the uploaders and last the gateways. Processes run until the test
// ends.
func StartCluster(t testing.TB, opts ClusterOptions) *Cluster {
	t.Helper()
	opts = opts.withDefaults()
	c := &Cluster{
		t: t, opts: opts, dir: t.TempDir(),
		nodes: map[string]*cnode{}, data: map[string]string{}, kinds: map[string][]string{},
	}
	etcdBin := Binary(t, "./services/cmd/streamline-etcd")
	logsvcBin := Binary(t, "./logsvc/cmd/logsvc")
	gatewayBin := Binary(t, "./gateway/cmd/gateway")
	var uploaderBin string
	if opts.Uploaders > 0 {
		uploaderBin = Binary(t, "./uploader/cmd/uploader")
	}

	// Reserve every port at once, so no two processes get the same one.
	services := opts.LogServices + opts.Uploaders + opts.Gateways
	n := 2 + services + opts.Gateways
	if opts.Links != nil {
		n += services + opts.LogServices + opts.Uploaders // etcd links, advertised addresses
	}
	if opts.HTTP {
		n += services
	}
	addrs := freeAddrs(t, n)
	next := func() string { a := addrs[0]; addrs = addrs[1:]; return a }
	c.http = map[string]string{}
	// link returns the address from reaches to through: a new proxy's, or
	// upstream itself when the test proxies nothing.
	link := func(from, to, upstream string) string {
		if opts.Links == nil {
			return upstream
		}
		l := Link{From: from, To: to, Listen: next(), Upstream: upstream}
		opts.Links(l)
		return l.Listen
	}
	// serviceArgs are the flags every logsvc, uploader and gateway gets:
	// its etcd endpoint (maybe proxied) and its HTTP address.
	serviceArgs := func(name string) []string {
		args := []string{"--id", name, "--etcd-endpoints", "http://" + link(name, "etcd", etcdClientAddr(c))}
		if opts.HTTP {
			c.http[name] = next()
			args = append(args, "--http-addr", c.http[name])
		}
		return args
	}

	etcdClient, etcdPeer := next(), next()
	c.eps = []string{"http://" + etcdClient}
	c.data["etcd"] = t.TempDir()
	c.start("etcd", "etcd", etcdBin, EtcdReadyMarker, false, etcdClient,
		"--name", "etcd", "--data-dir", c.data["etcd"], "--client-addr", etcdClient, "--peer-addr", etcdPeer,
		"--unsafe-no-fsync")

	ttl := opts.SessionTTL.String()
	for i := 1; i <= opts.LogServices; i++ {
		name, addr := fmt.Sprintf("logsvc-%d", i), next()
		c.data[name] = t.TempDir()
		// Small WAL files: each node preallocates (a spare of zeros) and
		// rolls often, so crashes meet prezeroed files at every stage.
		args := append(serviceArgs(name), "--data-dir", c.data[name], "--grpc-addr", addr, "--session-ttl", ttl,
			"--wal-file-bytes", strconv.Itoa(8<<20))
		if adv := link("gateway", name, addr); adv != addr {
			args = append(args, "--advertised-grpc-addr", adv)
		}
		c.start(name, "logsvc", logsvcBin, LogsvcReadyMarker, true, addr, args...)
	}
	for i := 1; i <= opts.Uploaders; i++ {
		name, addr := fmt.Sprintf("uploader-%d", i), next()
		args := append(serviceArgs(name), "--grpc-addr", addr, "--session-ttl", ttl)
		if adv := link("logsvc", name, addr); adv != addr {
			args = append(args, "--advertised-grpc-addr", adv)
		}
		c.start(name, "uploader", uploaderBin, UploaderReadyMarker, true, addr, args...)
	}
	for i := 1; i <= opts.Gateways; i++ {
		name, addr, admin := fmt.Sprintf("gateway-%d", i), next(), next()
		c.boot = append(c.boot, addr)
		c.admin = append(c.admin, admin)
		args := append(serviceArgs(name), "--node-id", strconv.Itoa(i), "--kafka-addr", addr, "--admin-addr", admin,
			"--auto-create-topics="+strconv.FormatBool(opts.AutoCreateTopics))
		c.start(name, "gateway", gatewayBin, GatewayReadyMarker, true, addr, args...)
	}
	return c
}

// start runs one node and waits until it prints its readiness marker.
func (c *Cluster) start(name, kind, bin, marker string, onStderr bool, addr string, args ...string) {
	c.t.Helper()
	args = append(args, c.opts.ExtraArgs[kind]...)
	args = append(args, c.opts.ExtraArgs[name]...)
	logDir := filepath.Join(c.dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		c.t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() { log.Close() }) // runs after the process is killed
	p := &Process{t: c.t, bin: bin, args: args, log: log, markerOnStderr: onStderr, name: name}
	c.names = append(c.names, name)
	c.kinds[kind] = append(c.kinds[kind], name)
	c.nodes[name] = &cnode{proc: p, kind: kind, marker: marker, addr: addr}
	startProcess(c.t, p, marker)
}

// FreeAddrs returns n free 127.0.0.1 addresses, distinct from every other
// one FreeAddr or FreeAddrs returned in this process; like FreeAddr they
// are released before use.
func FreeAddrs(t testing.TB, n int) []string { t.Helper(); return freeAddrs(t, n) }

func freeAddrs(t testing.TB, n int) []string {
	t.Helper()
	out := make([]string, 0, n)
	for range n {
		addr, err := freeport.Addr()
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, addr)
	}
	return out
}

// etcdClientAddr is etcd's client host:port (started first).
func etcdClientAddr(c *Cluster) string { return strings.TrimPrefix(c.eps[0], "http://") }

func (c *Cluster) node(name string) *cnode {
	c.t.Helper()
	n, ok := c.nodes[name]
	if !ok {
		c.t.Fatalf("cluster: no node %q (have %s)", name, strings.Join(c.names, ", "))
	}
	return n
}

// HTTPAddr is the named logsvc's, uploader's or gateway's HTTP address
// (/metrics, /healthz, /readyz), "" unless ClusterOptions.HTTP is set.
func (c *Cluster) HTTPAddr(name string) string { c.t.Helper(); c.node(name); return c.http[name] }

// AdminAddrs is the gateways' admin gRPC addresses, gateway-1 first.
func (c *Cluster) AdminAddrs() []string { return append([]string(nil), c.admin...) }

// Bootstrap is the gateways' Kafka addresses (host:port), gateway-1 first:
// the seed brokers of a client.
func (c *Cluster) Bootstrap() []string { return append([]string(nil), c.boot...) }

// EtcdEndpoints is etcd's client URLs (http://127.0.0.1:port).
func (c *Cluster) EtcdEndpoints() []string { return append([]string(nil), c.eps...) }

// Names is every node's name in start order: "etcd", "logsvc-1"...,
// "uploader-1"..., "gateway-1"....
func (c *Cluster) Names() []string { return append([]string(nil), c.names...) }

// NamesOf is the names of one kind of node ("etcd", "logsvc", "gateway",
// "uploader") in start order.
func (c *Cluster) NamesOf(kind string) []string { return append([]string(nil), c.kinds[kind]...) }

// Node is the named node's process (its PID, log, signals).
func (c *Cluster) Node(name string) *Process { c.t.Helper(); return c.node(name).proc }

// Addr is the address the named node serves on: etcd's client address, a
// logsvc's or uploader's gRPC address, a gateway's Kafka address.
func (c *Cluster) Addr(name string) string { c.t.Helper(); return c.node(name).addr }

// DataDir is the data directory of etcd or a logsvc node ("" for others).
func (c *Cluster) DataDir(name string) string { c.t.Helper(); c.node(name); return c.data[name] }

// Kill SIGKILLs the named node and waits until it is gone. Its etcd
// registration stays until its lease expires.
func (c *Cluster) Kill(name string) {
	c.t.Helper()
	p := c.node(name).proc
	p.Signal(syscall.SIGKILL)
	if err := p.Wait(30 * time.Second); err != nil && !p.Exited() {
		c.t.Fatalf("cluster: %s: %v after SIGKILL", name, err)
	}
}

// Stop freezes the named node with SIGSTOP: it holds its ports and files
// but answers nothing and renews no lease, like a long GC pause or a hung
// machine. Cont resumes it.
func (c *Cluster) Stop(name string) { c.t.Helper(); c.node(name).proc.Signal(syscall.SIGSTOP) }

// Cont resumes a node frozen by Stop.
func (c *Cluster) Cont(name string) { c.t.Helper(); c.node(name).proc.Signal(syscall.SIGCONT) }

// Restart runs the named node again with the same arguments, data
// directory and ports, and waits until it serves. A node that is still
// running is stopped cleanly first (SIGTERM, SIGKILL after 30 s; a frozen
// one is resumed so it can exit); to restart after a crash, Kill first.
func (c *Cluster) Restart(name string) {
	c.t.Helper()
	n := c.node(name)
	p := n.proc
	if !p.Exited() {
		p.Signal(syscall.SIGTERM)
		p.Signal(syscall.SIGCONT)
		if err := p.Wait(30 * time.Second); err != nil && !p.Exited() {
			c.t.Logf("cluster: %s did not stop within 30s of SIGTERM; killing it", name)
			c.Kill(name)
		}
	}
	p.Restart(n.marker)
}

// Etcd returns a new client of the cluster's etcd, closed when the test
// ends (before the processes are killed).
func (c *Cluster) Etcd(t testing.TB) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: c.eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("etcd client: %v", err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
