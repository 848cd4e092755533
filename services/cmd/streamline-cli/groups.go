package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
)

func (a *app) groupsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "groups",
		Short: "List and describe consumer groups, reset their offsets",
		Args:  noArgs,
		RunE:  groupRun,
	}
	c.AddCommand(a.groupsListCommand(), a.groupsDescribeCommand(), a.groupsResetCommand())
	return c
}

func (a *app) groupsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List consumer groups with their state",
		Args:    noArgs,
		RunE: a.adminAction(func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error {
			resp, err := cl.ListGroups(ctx, &adminv1.ListGroupsRequest{})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				out := struct {
					Groups []jsonGroupSummary `json:"groups"`
				}{Groups: []jsonGroupSummary{}}
				for _, g := range resp.GetGroups() {
					out.Groups = append(out.Groups, groupSummaryJSON(g))
				}
				return writeJSON(a.stdout, out)
			}
			if len(resp.GetGroups()) == 0 {
				fmt.Fprintln(a.stderr, "No consumer groups.")
				return nil
			}
			tw := newTable(a.stdout, "GROUP", "STATE", "PROTOCOL TYPE", "COORDINATOR")
			for _, g := range resp.GetGroups() {
				tw.row(g.GetGroup(), g.GetState(), orDash(g.GetProtocolType()), fmt.Sprint(g.GetCoordinator()))
			}
			return tw.flush()
		}),
	}
}

func (a *app) groupsDescribeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "describe GROUP",
		Short: "Show a group's members, assignments, committed offsets and lag",
		Args:  exactArgs("GROUP"),
		RunE: a.adminAction(func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error {
			resp, err := cl.DescribeGroup(ctx, &adminv1.DescribeGroupRequest{Group: args[0]})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				type member struct {
					MemberID   string           `json:"member_id"`
					InstanceID string           `json:"instance_id,omitempty"`
					ClientID   string           `json:"client_id"`
					ClientHost string           `json:"client_host"`
					Assigned   map[string][]int `json:"assigned"`
				}
				out := struct {
					Group    jsonGroupSummary  `json:"group"`
					Protocol string            `json:"protocol"`
					Members  []member          `json:"members"`
					Offsets  []jsonGroupOffset `json:"offsets"`
					TotalLag int64             `json:"total_lag"`
				}{Group: groupSummaryJSON(resp.GetGroup()), Protocol: resp.GetProtocol(), Members: []member{}, Offsets: []jsonGroupOffset{}, TotalLag: resp.GetTotalLag()}
				for _, m := range resp.GetMembers() {
					jm := member{MemberID: m.GetMemberId(), InstanceID: m.GetInstanceId(), ClientID: m.GetClientId(), ClientHost: m.GetClientHost(), Assigned: map[string][]int{}}
					for _, tp := range m.GetAssigned() {
						for _, p := range tp.GetPartitions() {
							jm.Assigned[tp.GetTopic()] = append(jm.Assigned[tp.GetTopic()], int(p))
						}
					}
					out.Members = append(out.Members, jm)
				}
				for _, o := range resp.GetOffsets() {
					out.Offsets = append(out.Offsets, groupOffsetJSON(o))
				}
				return writeJSON(a.stdout, out)
			}
			return printGroup(a.stdout, resp)
		}),
	}
}

// printGroup is the text of groups describe.
func printGroup(w io.Writer, resp *adminv1.DescribeGroupResponse) error {
	g := resp.GetGroup()
	hdr := newFields(w)
	hdr.row("Group:", g.GetGroup())
	hdr.row("State:", g.GetState())
	proto := orDash(g.GetProtocolType())
	if resp.GetProtocol() != "" {
		proto += " (" + resp.GetProtocol() + ")"
	}
	hdr.row("Protocol:", proto)
	hdr.row("Coordinator:", fmt.Sprint(g.GetCoordinator()))
	hdr.row("Members:", fmt.Sprint(len(resp.GetMembers())))
	hdr.row("Total Lag:", fmt.Sprint(resp.GetTotalLag()))
	if err := hdr.flush(); err != nil {
		return err
	}
	if len(resp.GetMembers()) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "MEMBER", "INSTANCE", "CLIENT", "HOST", "ASSIGNED")
		for _, m := range resp.GetMembers() {
			var as []string
			for _, tp := range m.GetAssigned() {
				ps := make([]string, 0, len(tp.GetPartitions()))
				for _, p := range tp.GetPartitions() {
					ps = append(ps, fmt.Sprint(p))
				}
				as = append(as, fmt.Sprintf("%s[%s]", tp.GetTopic(), strings.Join(ps, ",")))
			}
			assigned := "-"
			if len(as) > 0 {
				assigned = strings.Join(as, " ")
			}
			tw.row(m.GetMemberId(), orDash(m.GetInstanceId()), orDash(m.GetClientId()), orDash(m.GetClientHost()), assigned)
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}
	if len(resp.GetOffsets()) > 0 {
		fmt.Fprintln(w)
		tw := newTable(w, "TOPIC", "PARTITION", "COMMITTED", "END", "LAG", "MEMBER")
		for _, o := range resp.GetOffsets() {
			tw.row(o.GetTopic(), fmt.Sprint(o.GetPartition()), offsetText(o.GetCommitted()), offsetText(o.GetEnd()), fmt.Sprint(o.GetLag()), orDash(o.GetMemberId()))
		}
		return tw.flush()
	}
	return nil
}

func (a *app) groupsResetCommand() *cobra.Command {
	var (
		topic      string
		earliest   bool
		latest     bool
		offset     int64
		datetime   timeFlag
		partitions []int32
		dryRun     bool
	)
	c := &cobra.Command{
		Use:   "reset-offsets GROUP --topic TOPIC (--to-earliest | --to-latest | --to-offset N | --to-datetime TIME)",
		Short: "Move an inactive group's committed offsets of a topic",
		Long: `Move a consumer group's committed offsets of one topic, like Kafka's
kafka-consumer-groups --reset-offsets. The group must have no active
members (stop its consumers first): they would overwrite the reset with
their next commit. --dry-run shows the new offsets without committing.`,
		Example: `  streamline-cli groups reset-offsets my-group --topic events --to-earliest
  streamline-cli groups reset-offsets my-group --topic events --to-offset 100 --partitions 0,1
  streamline-cli groups reset-offsets my-group --topic events --to-datetime 2024-05-01T12:00:00Z --dry-run`,
		Args: exactArgs("GROUP"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if topic == "" {
				return usagef("missing flag --topic")
			}
			req := &adminv1.ResetGroupOffsetsRequest{Group: args[0], Topic: topic, Partitions: partitions, DryRun: dryRun}
			var given []string
			if earliest {
				given = append(given, "--to-earliest")
				req.To = &adminv1.ResetGroupOffsetsRequest_Earliest{Earliest: true}
			}
			if latest {
				given = append(given, "--to-latest")
				req.To = &adminv1.ResetGroupOffsetsRequest_Latest{Latest: true}
			}
			if cmd.Flags().Changed("to-offset") {
				if offset < 0 {
					return invalidFlag("to-offset", offset, "must not be negative")
				}
				given = append(given, "--to-offset")
				req.To = &adminv1.ResetGroupOffsetsRequest_Offset{Offset: offset}
			}
			if datetime.set {
				given = append(given, "--to-datetime")
				req.To = &adminv1.ResetGroupOffsetsRequest_TimestampMs{TimestampMs: datetime.t.UnixMilli()}
			}
			if len(given) != 1 {
				what := "none"
				if len(given) > 1 {
					what = strings.Join(given, " and ")
				}
				return usagef("give exactly one of --to-earliest, --to-latest, --to-offset, --to-datetime (got %s)", what)
			}
			for _, p := range partitions {
				if p < 0 {
					return invalidFlag("partitions", p, "partitions are numbered from 0")
				}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.callCtx()
			defer cancel()
			resp, err := cl.ResetGroupOffsets(ctx, req)
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				type newOffset struct {
					Topic     string `json:"topic"`
					Partition int32  `json:"partition"`
					Offset    int64  `json:"offset"`
				}
				out := struct {
					Group   string      `json:"group"`
					DryRun  bool        `json:"dry_run"`
					Offsets []newOffset `json:"offsets"`
				}{Group: args[0], DryRun: dryRun, Offsets: []newOffset{}}
				for _, o := range resp.GetOffsets() {
					out.Offsets = append(out.Offsets, newOffset{Topic: o.GetTopic(), Partition: o.GetPartition(), Offset: o.GetCommitted()})
				}
				return writeJSON(a.stdout, out)
			}
			if dryRun {
				fmt.Fprintf(a.stdout, "Dry run: group %q would get these offsets (nothing committed):\n", args[0])
			} else {
				fmt.Fprintf(a.stdout, "Reset group %q:\n", args[0])
			}
			tw := newTable(a.stdout, "TOPIC", "PARTITION", "NEW OFFSET")
			for _, o := range resp.GetOffsets() {
				tw.row(o.GetTopic(), fmt.Sprint(o.GetPartition()), offsetText(o.GetCommitted()))
			}
			return tw.flush()
		}),
	}
	f := c.Flags()
	f.StringVarP(&topic, "topic", "t", "", "topic whose offsets to reset (required)")
	f.BoolVar(&earliest, "to-earliest", false, "reset to the first offset still stored")
	f.BoolVar(&latest, "to-latest", false, "reset to the end (skip everything stored)")
	f.Int64Var(&offset, "to-offset", 0, "reset to this offset")
	f.Var(&datetime, "to-datetime", "reset to the first record at or after this RFC 3339 time")
	f.Int32SliceVar(&partitions, "partitions", nil, "partitions to reset, e.g. 0,1 (default: all)")
	f.BoolVar(&dryRun, "dry-run", false, "only show the new offsets; commit nothing")
	return c
}
