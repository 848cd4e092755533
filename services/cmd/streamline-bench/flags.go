package main

// The bench's own flag types (byte counts, name=value topic configs) and
// the checks of flag combinations no run can use.

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// byteSize is a flag of a byte count: 1048576, 1MiB, 512KiB, 1GiB, -1.
type byteSize struct {
	n   int64
	set bool
}

func (b *byteSize) String() string {
	if b == nil || !b.set {
		return ""
	}
	return strconv.FormatInt(b.n, 10)
}

// or is the value, or def when not set.
func (b byteSize) or(def int64) int64 {
	if b.set {
		return b.n
	}
	return def
}

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return err
	}
	b.n, b.set = n, true
	return nil
}

func parseBytes(s string) (int64, error) {
	num, mult := strings.TrimSpace(s), int64(1)
	for _, u := range []struct {
		suffix string
		size   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}} {
		if strings.HasSuffix(num, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(num, u.suffix)), u.size
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a byte count (e.g. 1048576, 512KiB, 1MiB, 1GiB)", s)
	}
	return n * mult, nil
}

// configList is a repeatable name=value flag.
type configList [][2]string

func (c *configList) String() string {
	if c == nil {
		return ""
	}
	var parts []string
	for _, kv := range *c {
		parts = append(parts, kv[0]+"="+kv[1])
	}
	return strings.Join(parts, ",")
}

func (c *configList) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q is not name=value", s)
	}
	*c = append(*c, [2]string{name, value})
	return nil
}

// checkServerFlags refuses combinations of the server, outage and budget
// flags no run can use, naming the flag.
func checkServerFlags(target, bin string, nodes int, s3 string, outAfter, outFor, duration time.Duration, cache, buf byteSize) error {
	switch {
	case duration < 0:
		return fmt.Errorf("--duration must not be negative, got %v", duration)
	case outAfter < 0 || outFor < 0:
		return fmt.Errorf("--s3-outage-after and --s3-outage-for must not be negative, got %v and %v", outAfter, outFor)
	case outAfter > 0 && outFor == 0:
		return errors.New("--s3-outage-after needs --s3-outage-for (how long the outage lasts)")
	case outFor > 0 && (s3 == "" || target != "streamline"):
		return errors.New("--s3-outage-for needs --target streamline and --s3 (the outage is injected into the bench's in-process S3)")
	case (cache.set || buf.set) && target != "streamline":
		return errors.New("--read-cache-bytes and --diskless-max-buffered-bytes need --target streamline (they configure the all-in-one)")
	case cache.set && cache.n <= 0 || buf.set && buf.n <= 0:
		return errors.New("--read-cache-bytes and --diskless-max-buffered-bytes must be positive")
	case bin == "":
		return nil
	case target != "streamline":
		return fmt.Errorf("--server-bin needs --target streamline (got --target %q)", target)
	case nodes > 1:
		return errors.New("--server-bin runs one all-in-one process: --logsvc-nodes must be 1")
	}
	st, err := os.Stat(bin)
	if err == nil && (st.IsDir() || st.Mode()&0o111 == 0) {
		err = errors.New("not an executable file")
	}
	if err != nil {
		return fmt.Errorf("--server-bin %s: %v (make build puts the all-in-one in bin/streamline)", bin, err)
	}
	return nil
}

// outageFault is the fault of --s3-outage-fault.
func outageFault(name string) (objstoretest.Fault, error) {
	switch name {
	case "drop-request":
		return objstoretest.DropRequest, nil
	case "slowdown":
		return objstoretest.SlowDown, nil
	case "hang":
		return objstoretest.Hang, nil
	}
	return 0, fmt.Errorf("--s3-outage-fault: %q is not drop-request, slowdown or hang", name)
}
