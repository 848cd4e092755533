package main

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"

	adminv1 "github.com/streamline-dev/streamline/proto/gen/streamline/admin/v1"
)

func (a *app) topicsCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "topics",
		Short: "Create, describe, list, alter and delete topics",
		Args:  noArgs,
		RunE:  groupRun,
	}
	c.AddCommand(a.topicsCreateCommand(), a.topicsDescribeCommand(), a.topicsListCommand(), a.topicsDeleteCommand(), a.topicsAlterCommand())
	return c
}

func (a *app) topicsCreateCommand() *cobra.Command {
	var (
		partitions  int32
		replication int32
		mode        storageModeFlag
		batchSize   int64
		batchTime   int64
		parallelism int32
		readCache   int64
		configs     keyValues
		validate    bool
	)
	c := &cobra.Command{
		Use:   "create NAME",
		Short: "Create a topic",
		Long: `Create a topic with a storage mode and configs.

--storage-mode says where the data lives: local (WAL and segments on the
leading log-service node), hybrid (local WAL, sealed segments moved to
object storage; local.retention.ms and local.retention.bytes bound what
stays on local disk) or diskless (straight to object storage). Hybrid and
diskless need an object store in the cluster. Without it the cluster's
default applies. A local topic can later become hybrid and back with
"topics alter NAME --set storage.mode=hybrid"; a diskless topic keeps its
mode. The --remote-storage-* flags tune diskless topics (the topic configs
remote.storage.*); --config sets any other topic config by its Kafka name.`,
		Example: `  streamline-cli topics create events --partitions 3 --storage-mode diskless \
      --remote-storage-batch-size 1048576 --remote-storage-batch-timeout-ms 100
  streamline-cli topics create logs --config retention.ms=86400000 --config cleanup.policy=delete
  streamline-cli topics create archive --storage-mode hybrid --config local.retention.ms=3600000
  streamline-cli topics create events --partitions 3 --validate-only`,
		Args: exactArgs("NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if partitions < 0 {
				return invalidFlag("partitions", partitions, "must be at least 1 (0 or unset: the cluster default)")
			}
			if replication < 0 {
				return invalidFlag("replication-factor", replication, "must be at least 1 (0 or unset: the cluster default)")
			}
			req := &adminv1.CreateTopicRequest{
				Name: args[0], Partitions: partitions, ReplicationFactor: replication, StorageMode: mode.mode,
				Configs: configs.m, ValidateOnly: validate,
			}
			rs := &adminv1.RemoteStorage{}
			given := false
			if cmd.Flags().Changed("remote-storage-batch-size") {
				rs.BatchSizeBytes, given = &batchSize, true
			}
			if cmd.Flags().Changed("remote-storage-batch-timeout-ms") {
				rs.BatchTimeoutMs, given = &batchTime, true
			}
			if cmd.Flags().Changed("remote-storage-upload-parallelism") {
				rs.UploadParallelism, given = &parallelism, true
			}
			if cmd.Flags().Changed("remote-storage-read-cache-bytes") {
				rs.ReadCacheBytes, given = &readCache, true
			}
			if given {
				req.RemoteStorage = rs
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.callCtx()
			defer cancel()
			resp, err := cl.CreateTopic(ctx, req)
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				return writeJSON(a.stdout, struct {
					Topic        jsonTopic `json:"topic"`
					ValidateOnly bool      `json:"validate_only,omitempty"`
				}{topicJSON(resp.GetTopic()), validate})
			}
			t := resp.GetTopic()
			verb := "Created"
			if validate {
				verb = "Validated (nothing created)"
			}
			fmt.Fprintf(a.stdout, "%s topic %q: %s, replication factor %d, storage mode %s.\n", verb, t.GetName(),
				plural(int64(t.GetPartitions()), "partition"), t.GetReplicationFactor(), storageModeTitle(t.GetStorageMode()))
			return nil
		}),
	}
	f := c.Flags()
	f.Int32VarP(&partitions, "partitions", "p", 0, "number of partitions (default: the cluster's default)")
	f.Int32VarP(&replication, "replication-factor", "r", 0, "copies of each partition on distinct log-service nodes (default: the cluster's, min(3, nodes)); diskless topics keep one copy in object storage")
	f.Var(&mode, "storage-mode", "where the data lives: local, hybrid or diskless (default: the cluster's default)")
	f.Int64Var(&batchSize, "remote-storage-batch-size", 0, "diskless: flush a batch to object storage at this many bytes (remote.storage.batch.size.bytes)")
	f.Int64Var(&batchTime, "remote-storage-batch-timeout-ms", 0, "diskless: flush a batch after this many milliseconds, at most 10000 (remote.storage.batch.timeout.ms)")
	f.Int32Var(&parallelism, "remote-storage-upload-parallelism", 0, "diskless: uploads in flight per node (remote.storage.upload.parallelism)")
	f.Int64Var(&readCache, "remote-storage-read-cache-bytes", 0, "diskless: read cache per node in bytes (remote.storage.read.cache.bytes)")
	f.Var(&configs, "config", "topic config key=value by its Kafka name (repeatable)")
	f.BoolVar(&validate, "validate-only", false, "only validate the request; create nothing")
	return c
}

func (a *app) topicsDescribeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "describe NAME",
		Short: "Show a topic: storage mode, configs and partitions with their leaders and offsets",
		Args:  exactArgs("NAME"),
		RunE: a.adminAction(func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error {
			resp, err := cl.DescribeTopic(ctx, &adminv1.DescribeTopicRequest{Name: args[0]})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				out := struct {
					Topic      jsonTopic       `json:"topic"`
					Partitions []jsonPartition `json:"partitions"`
				}{Topic: topicJSON(resp.GetTopic()), Partitions: []jsonPartition{}}
				for _, p := range resp.GetPartitions() {
					out.Partitions = append(out.Partitions, jsonPartition{
						Partition: p.GetPartition(), LeaderNode: p.GetLeaderNode(), LeaderEpoch: p.GetLeaderEpoch(),
						Replicas: nonNil(p.GetReplicas()), ISR: nonNil(p.GetIsr()),
						GatewayLeader: p.GetGatewayLeader(), LogStartOffset: p.GetLogStartOffset(),
						HighWatermark: p.GetHighWatermark(), SizeBytes: p.GetSizeBytes(), OffsetsError: p.GetOffsetsError(),
					})
				}
				return writeJSON(a.stdout, out)
			}
			return printTopic(a.stdout, resp)
		}),
	}
}

// printTopic is the text of topics describe.
func printTopic(w io.Writer, resp *adminv1.DescribeTopicResponse) error {
	t := resp.GetTopic()
	hdr := newFields(w)
	hdr.row("Topic:", t.GetName())
	hdr.row("ID:", orDash(t.GetId()))
	hdr.row("Partitions:", fmt.Sprint(t.GetPartitions()))
	hdr.row("Replication:", fmt.Sprint(t.GetReplicationFactor()))
	hdr.row("Storage Mode:", storageModeTitle(t.GetStorageMode()))
	if err := hdr.flush(); err != nil {
		return err
	}
	if rs := t.GetRemoteStorage(); rs != nil {
		fmt.Fprintln(w, "Remote Storage:")
		tw := newTable(w)
		opt := func(p *int64) string {
			if p == nil {
				return "(default)"
			}
			return fmt.Sprint(*p)
		}
		par := "(default)"
		if rs.UploadParallelism != nil {
			par = fmt.Sprint(*rs.UploadParallelism)
		}
		tw.row("  Batch Size (bytes):", opt(rs.BatchSizeBytes))
		tw.row("  Batch Timeout (ms):", opt(rs.BatchTimeoutMs))
		tw.row("  Upload Parallelism:", par)
		tw.row("  Read Cache (bytes):", opt(rs.ReadCacheBytes))
		if err := tw.flush(); err != nil {
			return err
		}
	}
	if cfg := t.GetConfigs(); len(cfg) > 0 {
		fmt.Fprintln(w, "Configs:")
		tw := newTable(w)
		for _, k := range sortedKeys(cfg) {
			tw.row("  "+k, cfg[k])
		}
		if err := tw.flush(); err != nil {
			return err
		}
	}
	fmt.Fprintln(w)
	withErr := false
	for _, p := range resp.GetPartitions() {
		withErr = withErr || p.GetOffsetsError() != ""
	}
	cols := []string{"PARTITION", "LEADER NODE", "EPOCH", "REPLICAS", "ISR", "LOG START", "HIGH WATERMARK", "SIZE BYTES", "GATEWAY LEADER"}
	if withErr {
		cols = append(cols, "ERROR")
	}
	tw := newTable(w, cols...)
	for _, p := range resp.GetPartitions() {
		leader := p.GetLeaderNode()
		if leader == "" {
			leader = "(offline)"
		}
		row := []string{fmt.Sprint(p.GetPartition()), leader, fmt.Sprint(p.GetLeaderEpoch()),
			orDash(strings.Join(p.GetReplicas(), ",")), orDash(strings.Join(p.GetIsr(), ",")),
			offsetText(p.GetLogStartOffset()), offsetText(p.GetHighWatermark()), offsetText(p.GetSizeBytes()), fmt.Sprint(p.GetGatewayLeader())}
		if withErr {
			row = append(row, orDash(p.GetOffsetsError()))
		}
		tw.row(row...)
	}
	return tw.flush()
}

func (a *app) topicsListCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "list",
		Aliases: []string{"ls"},
		Short:   "List topics",
		Args:    noArgs,
		RunE: a.adminAction(func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error {
			resp, err := cl.ListTopics(ctx, &adminv1.ListTopicsRequest{})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				out := struct {
					Topics []jsonTopic `json:"topics"`
				}{Topics: []jsonTopic{}}
				for _, t := range resp.GetTopics() {
					out.Topics = append(out.Topics, topicJSON(t))
				}
				return writeJSON(a.stdout, out)
			}
			if len(resp.GetTopics()) == 0 {
				fmt.Fprintln(a.stderr, "No topics.")
				return nil
			}
			tw := newTable(a.stdout, "NAME", "PARTITIONS", "STORAGE MODE")
			for _, t := range resp.GetTopics() {
				tw.row(t.GetName(), fmt.Sprint(t.GetPartitions()), storageModeTitle(t.GetStorageMode()))
			}
			return tw.flush()
		}),
	}
}

func (a *app) topicsDeleteCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "delete NAME",
		Aliases: []string{"rm"},
		Short:   "Delete a topic and all its data",
		Args:    exactArgs("NAME"),
		RunE: a.adminAction(func(ctx context.Context, cl adminv1.AdminServiceClient, cmd *cobra.Command, args []string) error {
			if _, err := cl.DeleteTopic(ctx, &adminv1.DeleteTopicRequest{Name: args[0]}); err != nil {
				return err
			}
			if a.output == outputJSON {
				return writeJSON(a.stdout, map[string]string{"deleted": args[0]})
			}
			fmt.Fprintf(a.stdout, "Deleted topic %q.\n", args[0])
			return nil
		}),
	}
}

func (a *app) topicsAlterCommand() *cobra.Command {
	var (
		set      keyValues
		del      names
		validate bool
	)
	c := &cobra.Command{
		Use:   "alter NAME",
		Short: "Set or remove topic configs",
		Long: `Set configs of a topic (--set key=value) or return them to their
defaults (--delete key), incrementally: configs not named keep their values.
storage.mode changes a local topic into a hybrid one and back (hybrid needs
an object store in the cluster); a diskless topic keeps its mode.`,
		Example: `  streamline-cli topics alter events --set retention.ms=3600000
  streamline-cli topics alter events --set storage.mode=hybrid --set local.retention.ms=3600000
  streamline-cli topics alter events --delete retention.ms --set remote.storage.batch.timeout.ms=50`,
		Args: exactArgs("NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if len(set.m) == 0 && len(del) == 0 {
				return usagef("nothing to change: give --set key=value or --delete key")
			}
			for _, k := range del {
				if _, ok := set.m[k]; ok {
					return usagef("config %q is both in --set and --delete", k)
				}
			}
			cl, err := a.client()
			if err != nil {
				return err
			}
			ctx, cancel := a.callCtx()
			defer cancel()
			resp, err := cl.AlterTopicConfigs(ctx, &adminv1.AlterTopicConfigsRequest{Name: args[0], Set: set.m, Delete: del, ValidateOnly: validate})
			if err != nil {
				return err
			}
			if a.output == outputJSON {
				return writeJSON(a.stdout, struct {
					Topic        jsonTopic `json:"topic"`
					ValidateOnly bool      `json:"validate_only,omitempty"`
				}{topicJSON(resp.GetTopic()), validate})
			}
			verb := "Altered"
			if validate {
				verb = "Validated (nothing changed)"
			}
			fmt.Fprintf(a.stdout, "%s configs of topic %q:\n", verb, args[0])
			cfg := resp.GetTopic().GetConfigs()
			tw := newTable(a.stdout)
			for _, k := range set.order {
				tw.row("  "+k, set.m[k])
			}
			for _, k := range del {
				if now, ok := cfg[k]; ok {
					tw.row("  "+k, now+" (default)")
				} else {
					tw.row("  "+k, "(unset)")
				}
			}
			return tw.flush()
		}),
	}
	f := c.Flags()
	f.Var(&set, "set", "config key=value to set (repeatable)")
	f.Var(&del, "delete", "config to return to its default (repeatable)")
	f.BoolVar(&validate, "validate-only", false, "only validate the change; change nothing")
	return c
}

// nonNil makes an empty list print as [] in JSON.
func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
