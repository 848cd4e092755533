package allinone_test

import (
	"context"
	"net"
	"strings"
	"testing"

	"github.com/streamline-dev/streamline/services/allinone"
)

// TestHTTPAddrErrorsNameTheFlag: a malformed --http-addr fails validation
// and a busy one fails Start, both saying which flag is wrong; a busy one
// fails before etcd or any service starts.
func TestHTTPAddrErrorsNameTheFlag(t *testing.T) {
	cfg := allinone.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTPAddr = "9094"
	if err := cfg.Validate(); err == nil || !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("Validate: %v, want an error naming --http-addr", err)
	}
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	cfg.HTTPAddr = busy.Addr().String()
	cfg.EtcdClientAddr, cfg.EtcdPeerAddr = busy.Addr().String(), busy.Addr().String() // never reached
	s, err := allinone.Start(context.Background(), cfg)
	if err == nil {
		s.Close()
		t.Fatal("started on a busy --http-addr")
	}
	if !strings.Contains(err.Error(), "--http-addr") {
		t.Fatalf("Start: %v, want an error naming --http-addr", err)
	}
	if allinone.Default().HTTPAddr != "127.0.0.1:9094" {
		t.Fatalf("default --http-addr %q, want 127.0.0.1:9094", allinone.Default().HTTPAddr)
	}
}
