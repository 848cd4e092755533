package main

import (
	"io"
	"strings"
	"testing"
)

func parse(t *testing.T, args []string) (*options, error) {
	t.Helper()
	o := newOptions()
	o.fs.SetOutput(io.Discard)
	if err := o.fs.FlagSet.Parse(args); err != nil {
		return o, err
	}
	return o, o.validate()
}

func TestFlagsFromEnvironment(t *testing.T) {
	t.Setenv("STREAMLINE_NODE_ID", "4")
	t.Setenv("STREAMLINE_AUTO_CREATE_TOPICS", "true")
	t.Setenv("STREAMLINE_KAFKA_ADDR", ":1")
	o := newOptions()
	o.fs.SetOutput(io.Discard)
	if code, ok := o.fs.Parse([]string{"--kafka-addr", ":2"}); !ok {
		t.Fatalf("parse: exit %d", code)
	}
	if *o.nodeID != 4 || !*o.autoCreate || *o.kafkaAddr != ":2" {
		t.Fatalf("parsed node %d auto %v addr %s", *o.nodeID, *o.autoCreate, *o.kafkaAddr)
	}
}

func TestBadFlagsAreNamed(t *testing.T) {
	for _, tc := range []struct {
		args    []string
		wantErr string
	}{
		{[]string{"--default-partitions", "x"}, "default-partitions"},
		{[]string{"--default-storage-mode", "tape"}, "--default-storage-mode"},
		{[]string{"--default-storage-mode", "Hybrid"}, "--default-storage-mode"},
		{[]string{"--default-partitions", "0"}, "--default-partitions"},
		{[]string{"--node-id", "-1"}, "--node-id"},
		{[]string{"--http-addr", "9094"}, "--http-addr"},
		{[]string{"--http-addr", "127.0.0.1:99999"}, "--http-addr"},
		{[]string{"--transaction-max-timeout", "0s"}, "--transaction-max-timeout"},
		{[]string{"--transaction-max-timeout", "800h"}, "--transaction-max-timeout"},
		{[]string{"--transactional-id-expiration", "0s"}, "--transactional-id-expiration"},
		{[]string{"--transaction-version", "3"}, "--transaction-version"},
		{[]string{"--transaction-version", "0"}, "--transaction-version"},
	} {
		_, err := parse(t, tc.args)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v: error %v, want one naming %q", tc.args, err, tc.wantErr)
		}
	}
	if code := run([]string{"--log-level", "loud"}); code != 2 {
		t.Errorf("--log-level loud: exit %d, want 2", code)
	}
	t.Setenv("STREAMLINE_NODE_ID", "seven")
	if code := run(nil); code != 2 {
		t.Errorf("STREAMLINE_NODE_ID=seven: exit %d, want 2", code)
	}
}

// TestStorageModeFlag: every storage mode is a valid default (hybrid and
// diskless topics are then refused at creation while the cluster has no
// object store, not at startup).
func TestStorageModeFlag(t *testing.T) {
	for _, mode := range []string{"local", "hybrid", "diskless"} {
		o, err := parse(t, []string{"--default-storage-mode", mode})
		if err != nil || *o.storageMode != mode {
			t.Errorf("--default-storage-mode %s: %v (parsed %q)", mode, err, *o.storageMode)
		}
	}
}
