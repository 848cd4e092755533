package chaos

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/Shopify/toxiproxy/v2"
	"github.com/Shopify/toxiproxy/v2/collectors"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/streamline-dev/streamline/services/cluster"
)

// network holds the toxiproxy proxies (the library, in the test process)
// that every inter-process connection of the campaign's cluster goes
// through: each process to etcd, the gateways to each logsvc, the logsvc
// nodes to each uploader, and every process to the S3 server.
type network struct {
	srv *toxiproxy.ApiServer

	mu      sync.Mutex
	proxies map[string]*toxiproxy.Proxy // by link name, "from->to"
	order   []string
}

func newNetwork() *network {
	srv := toxiproxy.NewServer(toxiproxy.NewMetricsContainer(prometheus.NewRegistry()), zerolog.Nop())
	srv.Metrics.ProxyMetrics = collectors.NewProxyMetricCollectors()
	return &network{srv: srv, proxies: map[string]*toxiproxy.Proxy{}}
}

// add starts a proxy for link; it is the cluster.ClusterOptions.Links hook.
func (n *network) add(t testing.TB, l cluster.Link) {
	t.Helper()
	p := toxiproxy.NewProxy(n.srv, l.Name(), l.Listen, l.Upstream)
	if err := p.Start(); err != nil {
		t.Fatalf("chaos: proxy %s: %v", l.Name(), err)
	}
	t.Cleanup(p.Stop)
	n.mu.Lock()
	n.proxies[l.Name()] = p
	n.order = append(n.order, l.Name())
	n.mu.Unlock()
}

// links is every proxied link's name, in creation order.
func (n *network) links() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]string(nil), n.order...)
}

// toxic is one toxiproxy toxic, applied to both directions of a link.
type toxic struct {
	kind  string // toxiproxy type: latency, reset_peer, timeout
	attrs string // its JSON attributes
}

// inject adds t to both directions of link and returns what removes it.
func (n *network) inject(link string, t toxic) (heal func(), err error) {
	n.mu.Lock()
	p := n.proxies[link]
	n.mu.Unlock()
	if p == nil {
		return nil, fmt.Errorf("no link %q (have %s)", link, strings.Join(n.links(), ", "))
	}
	var names []string
	for _, stream := range []string{"upstream", "downstream"} {
		name := t.kind + "_" + stream
		js := fmt.Sprintf(`{"name":%q,"type":%q,"stream":%q,"toxicity":1,"attributes":%s}`, name, t.kind, stream, t.attrs)
		if _, err := p.Toxics.AddToxicJson(strings.NewReader(js)); err != nil {
			for _, added := range names {
				_ = p.Toxics.RemoveToxic(context.Background(), added)
			}
			return nil, fmt.Errorf("toxic %s on %s: %w", t.kind, link, err)
		}
		names = append(names, name)
	}
	return func() {
		for _, name := range names {
			_ = p.Toxics.RemoveToxic(context.Background(), name)
		}
	}, nil
}
