package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
)

func (a *app) clusterCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "cluster",
		Short: "Show the cluster: gateways, log-service nodes, uploaders and the controller",
		Args:  noArgs,
		RunE: a.adminAction(func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error {
			resp, err := cl.DescribeCluster(ctx, &adminv1.DescribeClusterRequest{})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				return writeJSON(a.stdout, clusterJSON(resp))
			}
			return a.printCluster(resp)
		}),
	}
}

type jsonGateway struct {
	ID     string `json:"id"`
	NodeID int32  `json:"node_id"`
	Host   string `json:"host"`
	Port   int32  `json:"port"`
	Rack   string `json:"rack,omitempty"`
}

type jsonLogNode struct {
	ID            string           `json:"id"`
	Addr          string           `json:"addr"`
	PartitionsLed map[string]int32 `json:"partitions_led"`
}

type jsonUploader struct {
	ID   string `json:"id"`
	Addr string `json:"addr"`
}

type jsonCluster struct {
	ClusterID  string         `json:"cluster_id"`
	Gateways   []jsonGateway  `json:"gateways"`
	LogNodes   []jsonLogNode  `json:"log_nodes"`
	Uploaders  []jsonUploader `json:"uploaders"`
	Controller string         `json:"controller"`
}

func clusterJSON(resp *adminv1.DescribeClusterResponse) jsonCluster {
	out := jsonCluster{ClusterID: resp.GetClusterId(), Controller: resp.GetController(),
		Gateways: []jsonGateway{}, LogNodes: []jsonLogNode{}, Uploaders: []jsonUploader{}}
	for _, g := range resp.GetGateways() {
		out.Gateways = append(out.Gateways, jsonGateway{ID: g.GetId(), NodeID: g.GetNodeId(), Host: g.GetHost(), Port: g.GetPort(), Rack: g.GetRack()})
	}
	for _, n := range resp.GetLogNodes() {
		led := n.GetPartitionsLed()
		if led == nil {
			led = map[string]int32{}
		}
		out.LogNodes = append(out.LogNodes, jsonLogNode{ID: n.GetId(), Addr: n.GetAddr(), PartitionsLed: led})
	}
	for _, u := range resp.GetUploaders() {
		out.Uploaders = append(out.Uploaders, jsonUploader{ID: u.GetId(), Addr: u.GetAddr()})
	}
	return out
}

func (a *app) printCluster(resp *adminv1.DescribeClusterResponse) error {
	w := a.stdout
	hdr := newFields(w)
	hdr.row("Cluster ID:", orDash(resp.GetClusterId()))
	ctrl := resp.GetController()
	if ctrl == "" {
		ctrl = "(none elected)"
	}
	hdr.row("Controller:", ctrl)
	if err := hdr.flush(); err != nil {
		return err
	}

	fmt.Fprintf(w, "\nGateways (%d):\n", len(resp.GetGateways()))
	if len(resp.GetGateways()) > 0 {
		tw := newTable(w, "NODE ID", "ID", "KAFKA ADDRESS", "RACK")
		for _, g := range resp.GetGateways() {
			tw.row(fmt.Sprint(g.GetNodeId()), g.GetId(), gatewayAddr(g), orDash(g.GetRack()))
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(w, "\nLog Nodes (%d):\n", len(resp.GetLogNodes()))
	if len(resp.GetLogNodes()) > 0 {
		tw := newTable(w, "ID", "ADDRESS", "CONTROLLER", "PARTITIONS LED")
		for _, n := range resp.GetLogNodes() {
			isCtrl := ""
			if n.GetId() == resp.GetController() {
				isCtrl = "yes"
			}
			tw.row(n.GetId(), n.GetAddr(), orDash(isCtrl), partitionsLedText(n.GetPartitionsLed()))
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}

	fmt.Fprintf(w, "\nUploaders (%d):\n", len(resp.GetUploaders()))
	if len(resp.GetUploaders()) > 0 {
		tw := newTable(w, "ID", "ADDRESS")
		for _, u := range resp.GetUploaders() {
			tw.row(u.GetId(), u.GetAddr())
		}
		return tw.flush()
	}
	return nil
}

// partitionsLedText is "Local: 2, Diskless: 3 (5 in all)", modes in a
// fixed order.
func partitionsLedText(led map[string]int32) string {
	var parts []string
	var total int32
	seen := map[string]bool{}
	for _, mode := range append([]string{"local", "hybrid", "diskless"}, sortedKeys(led)...) {
		if seen[mode] || led[mode] == 0 {
			continue
		}
		seen[mode] = true
		parts = append(parts, fmt.Sprintf("%s: %d", titleCase(mode), led[mode]))
		total += led[mode]
	}
	if len(parts) == 0 {
		return "none"
	}
	return fmt.Sprintf("%s (%d in all)", strings.Join(parts, ", "), total)
}

func gatewayAddr(g *adminv1.Gateway) string {
	return net.JoinHostPort(g.GetHost(), strconv.Itoa(int(g.GetPort())))
}

// bootstrapServers is --bootstrap-servers, or else the gateways the admin
// API lists.
func (a *app) bootstrapServers(ctx context.Context) ([]string, error) {
	if a.bootstrap != "" {
		var out []string
		for _, s := range strings.Split(a.bootstrap, ",") {
			if s = strings.TrimSpace(s); s != "" {
				if _, _, err := net.SplitHostPort(s); err != nil {
					return nil, invalidFlag("bootstrap-servers", a.bootstrap, fmt.Sprintf("%q is not host:port", s))
				}
				out = append(out, s)
			}
		}
		if len(out) == 0 {
			return nil, invalidFlag("bootstrap-servers", a.bootstrap, "no address")
		}
		return out, nil
	}
	cl, err := a.client()
	if err != nil {
		return nil, err
	}
	cctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	resp, err := cl.DescribeCluster(cctx, &adminv1.DescribeClusterRequest{})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, g := range resp.GetGateways() {
		out = append(out, gatewayAddr(g))
	}
	if len(out) == 0 {
		return nil, errors.New("the cluster has no live gateway to produce or consume through (or give --bootstrap-servers)")
	}
	return out, nil
}
