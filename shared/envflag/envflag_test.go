package envflag

import (
	"flag"
	"io"
	"strings"
	"testing"
)

func TestEnvFillsUnsetFlagsOnly(t *testing.T) {
	t.Setenv("STREAMLINE_KAFKA_ADDR", "1.2.3.4:9092")
	t.Setenv("STREAMLINE_DEFAULT_PARTITIONS", "7")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	addr := fs.String("kafka-addr", "127.0.0.1:9092", "")
	parts := fs.Int("default-partitions", 1, "")
	if err := Parse(fs, []string{"--default-partitions=3"}); err != nil {
		t.Fatal(err)
	}
	if *addr != "1.2.3.4:9092" || *parts != 3 {
		t.Fatalf("addr=%s parts=%d", *addr, *parts)
	}
}

func TestBadEnvValueNamesTheFlag(t *testing.T) {
	t.Setenv("STREAMLINE_DEFAULT_PARTITIONS", "many")
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Int("default-partitions", 1, "")
	err := Parse(fs, nil)
	if err == nil || !strings.Contains(err.Error(), "--default-partitions") || !strings.Contains(err.Error(), "STREAMLINE_DEFAULT_PARTITIONS") {
		t.Fatalf("error %v", err)
	}
	if err := Parse(flag.NewFlagSet("y", flag.ContinueOnError), []string{"stray"}); err == nil {
		t.Fatal("stray argument accepted")
	}
}
