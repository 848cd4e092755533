package e2e

import (
	"os"
	"testing"

	"github.com/streamline-dev/streamline/services/cluster"
)

func TestMain(m *testing.M) {
	code := m.Run()
	cluster.RemoveBinaries()
	os.Exit(code)
}
