package main

import (
	"io"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	env := map[string]string{"STREAMLINE_NODE_ID": "4", "STREAMLINE_AUTO_CREATE_TOPICS": "true", "STREAMLINE_KAFKA_ADDR": ":1"}
	o, err := parseFlags([]string{"--kafka-addr", ":2", "--log-level", "debug"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.nodeID != 4 || !o.autoCreate || o.kafkaAddr != ":2" || o.logLevel.String() != "DEBUG" {
		t.Fatalf("parsed %+v", o)
	}

	for _, tc := range []struct {
		args    []string
		env     map[string]string
		wantErr string
	}{
		{[]string{"--default-partitions", "x"}, nil, "default-partitions"},
		{nil, map[string]string{"STREAMLINE_NODE_ID": "seven"}, "--node-id (from STREAMLINE_NODE_ID)"},
		{[]string{"--default-storage-mode", "tape"}, nil, "--default-storage-mode"},
		{[]string{"--default-storage-mode", "diskless"}, nil, "--default-storage-mode"},
		{[]string{"--default-partitions", "0"}, nil, "--default-partitions"},
		{[]string{"--node-id", "-1"}, nil, "--node-id"},
		{[]string{"--log-level", "loud"}, nil, "log-level"},
	} {
		_, err := parseFlags(tc.args, func(k string) string { return tc.env[k] }, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%v %v: error %v, want one naming %q", tc.args, tc.env, err, tc.wantErr)
		}
	}
}
