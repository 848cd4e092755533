package gateway

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/streamline-dev/streamline/gateway/groups"
	"github.com/streamline-dev/streamline/shared/telemetry"
)

var (
	groupsDesc = telemetry.NewDesc("gateway", "groups",
		"Consumer groups this gateway coordinates and has loaded (groups of the shards it holds, used since it took them).", nil, nil)
	groupMembersDesc = telemetry.NewDesc("gateway", "group_members",
		"Members of the consumer groups this gateway coordinates.", nil, nil)
)

// registerGroupMetrics exports the coordinator's group and member counts
// (read at scrape time) to reg, and returns how to withdraw them.
func registerGroupMetrics(reg prometheus.Registerer, c *groups.Coordinator) (unregister func()) {
	if reg == nil {
		return func() {}
	}
	col := telemetry.NewCollector(func(ch chan<- prometheus.Metric) {
		n, members := c.Counts()
		ch <- prometheus.MustNewConstMetric(groupsDesc, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(groupMembersDesc, prometheus.GaugeValue, float64(members))
	}, groupsDesc, groupMembersDesc)
	if err := reg.Register(col); err != nil {
		// Another gateway of this process reports its groups already.
		return func() {}
	}
	return func() { reg.Unregister(col) }
}
