// Command probe is the health check of Streamline's container images: the
// images are FROM scratch (no shell, no curl), so compose health checks and
// Kubernetes exec probes run this static binary instead. It exits 0 when
// the check passes and 1 (with the reason on stderr) when it fails.
//
//	probe tcp HOST:PORT                   a TCP connection is accepted
//	probe http URL                        GET answers 2xx
//	probe kafka HOST:PORT                 a Kafka ApiVersions request is answered without error
//	probe metric URL NAME MIN             the Prometheus text at URL has series NAME summing to >= MIN
//	probe s3-bucket [--create] ENDPOINT BUCKET
//	                                      a signed HEAD of the bucket answers 200; with
//	                                      --create a missing bucket is created first
//
// Every command takes --timeout (default 3s), which bounds the whole check.
// s3-bucket signs with AWS Signature V4 using AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, or versitygw's ROOT_ACCESS_KEY and ROOT_SECRET_KEY
// when those are unset, and --region (default us-east-1).
//
// It uses the standard library only, so it stays small and builds anywhere.
package main

import (
	"bufio"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
)

const usage = `probe: health checks for Streamline's container images

usage:
  probe tcp [--timeout D] HOST:PORT
  probe http [--timeout D] URL
  probe kafka [--timeout D] HOST:PORT
  probe metric [--timeout D] URL NAME MIN
  probe s3-bucket [--timeout D] [--region R] [--create] ENDPOINT BUCKET

Exit status 0: healthy; 1: not healthy (reason on stderr); 2: bad usage.
s3-bucket signs requests with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or
ROOT_ACCESS_KEY/ROOT_SECRET_KEY when those are unset.
`

func main() { os.Exit(run(os.Args[1:], os.Stderr)) }

// command is one subcommand: its flags and what it checks.
type command struct {
	args  int // positional arguments
	flags func(fs *flag.FlagSet) func(ctx context.Context, args []string) error
}

var commands = map[string]command{
	"tcp": {1, func(*flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, a []string) error { return checkTCP(ctx, a[0]) }
	}},
	"http": {1, func(*flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, a []string) error { return checkHTTP(ctx, a[0]) }
	}},
	"kafka": {1, func(*flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, a []string) error { return checkKafka(ctx, a[0]) }
	}},
	"metric": {3, func(*flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, a []string) error { return checkMetric(ctx, a[0], a[1], a[2]) }
	}},
	"s3-bucket": {2, func(fs *flag.FlagSet) func(context.Context, []string) error {
		region := fs.String("region", "us-east-1", "region the requests are signed for")
		create := fs.Bool("create", false, "create the bucket if it does not exist")
		return func(ctx context.Context, a []string) error {
			return checkBucket(ctx, a[0], a[1], *region, *create, credentialsFromEnv())
		}
	}},
}

func run(args []string, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, usage)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	cmd, ok := commands[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "probe: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	fs := flag.NewFlagSet("probe "+args[0], flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 3*time.Second, "bound on the whole check")
	check := cmd.flags(fs)
	if err := fs.Parse(args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != cmd.args {
		fmt.Fprintf(stderr, "probe %s: want %d argument(s), got %d\n\n%s", args[0], cmd.args, fs.NArg(), usage)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	if err := check(ctx, fs.Args()); err != nil {
		fmt.Fprintf(stderr, "probe %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func checkTCP(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return c.Close()
}

// checkMetric sums the samples of series name (any labels) in the
// Prometheus text format served at rawURL and requires at least min.
func checkMetric(ctx context.Context, rawURL, name, minimum string) error {
	want, err := strconv.ParseFloat(minimum, 64)
	if err != nil {
		return fmt.Errorf("MIN %q is not a number", minimum)
	}
	resp, err := get(ctx, rawURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sum, seen := 0.0, false
	sc := bufio.NewScanner(io.LimitReader(resp.Body, 64<<20))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		var series, value string
		switch {
		case strings.HasPrefix(line, name+"{"):
			i := strings.LastIndexByte(line, '}') // label values may hold spaces
			if i < 0 {
				continue
			}
			series, value = line[:i+1], strings.TrimSpace(line[i+1:])
		case strings.HasPrefix(line, name+" "):
			series, value = name, strings.TrimSpace(line[len(name):])
		default:
			continue
		}
		if value == "" {
			return fmt.Errorf("%s: no sample", series)
		}
		v, err := strconv.ParseFloat(strings.Fields(value)[0], 64)
		if err != nil {
			return fmt.Errorf("%s: bad sample %q", series, value)
		}
		sum, seen = sum+v, true
	}
	if err := sc.Err(); err != nil {
		return err
	}
	if !seen {
		return fmt.Errorf("no series %s at %s", name, rawURL)
	}
	if sum < want {
		return fmt.Errorf("%s = %g, want at least %g", name, sum, want)
	}
	return nil
}

func checkHTTP(ctx context.Context, rawURL string) error {
	resp, err := get(ctx, rawURL)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return nil
}

// get GETs rawURL and requires a 2xx answer; the caller closes the body.
func get(ctx context.Context, rawURL string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode/100 != 2 {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", rawURL, resp.Status)
	}
	return resp, nil
}

// checkKafka sends ApiVersions v0 (every Kafka server answers it, before
// any authentication) and wants error_code 0 back.
func checkKafka(ctx context.Context, addr string) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		c.SetDeadline(dl)
	}
	const (
		apiVersionsKey = 18
		correlationID  = 0x5eed
		clientID       = "streamline-probe"
	)
	req := binary.BigEndian.AppendUint16(nil, apiVersionsKey)
	req = binary.BigEndian.AppendUint16(req, 0) // version 0
	req = binary.BigEndian.AppendUint32(req, correlationID)
	req = binary.BigEndian.AppendUint16(req, uint16(len(clientID)))
	req = append(req, clientID...)
	msg := binary.BigEndian.AppendUint32(nil, uint32(len(req)))
	if _, err := c.Write(append(msg, req...)); err != nil {
		return fmt.Errorf("write ApiVersions: %w", err)
	}
	var head [4]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return fmt.Errorf("read ApiVersions response: %w", err)
	}
	size := binary.BigEndian.Uint32(head[:])
	if size < 6 || size > 1<<20 {
		return fmt.Errorf("ApiVersions response of implausible size %d", size)
	}
	body := make([]byte, size)
	if _, err := io.ReadFull(c, body); err != nil {
		return fmt.Errorf("read ApiVersions response: %w", err)
	}
	if got := binary.BigEndian.Uint32(body); got != correlationID {
		return fmt.Errorf("ApiVersions response has correlation id %d, want %d", got, correlationID)
	}
	if code := int16(binary.BigEndian.Uint16(body[4:])); code != 0 {
		return fmt.Errorf("ApiVersions answered error code %d", code)
	}
	return nil
}

type credentials struct{ access, secret string }

func credentialsFromEnv() credentials {
	if a, s := os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY"); a != "" && s != "" {
		return credentials{a, s}
	}
	return credentials{os.Getenv("ROOT_ACCESS_KEY"), os.Getenv("ROOT_SECRET_KEY")}
}

// checkBucket HEADs endpoint/bucket (path style), creating the bucket
// first when create is set and it is missing.
func checkBucket(ctx context.Context, endpoint, bucket, region string, create bool, cred credentials) error {
	if cred.access == "" || cred.secret == "" {
		return errors.New("no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or ROOT_ACCESS_KEY and ROOT_SECRET_KEY)")
	}
	base, err := url.Parse(endpoint)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return fmt.Errorf("endpoint %q: want http(s)://host[:port]", endpoint)
	}
	if bucket == "" || strings.Contains(bucket, "/") {
		return fmt.Errorf("bad bucket name %q", bucket)
	}
	u := *base
	u.Path = strings.TrimSuffix(base.Path, "/") + "/" + bucket
	status, err := s3Do(ctx, http.MethodHead, &u, region, cred)
	if err != nil {
		return err
	}
	if status == http.StatusNotFound && create {
		status, err = s3Do(ctx, http.MethodPut, &u, region, cred)
		if err != nil {
			return err
		}
		// 409 BucketAlreadyOwnedByYou: another probe created it meanwhile.
		if status != http.StatusOK && status != http.StatusConflict {
			return fmt.Errorf("create bucket %q: HTTP %d", bucket, status)
		}
		status, err = s3Do(ctx, http.MethodHead, &u, region, cred)
		if err != nil {
			return err
		}
	}
	if status != http.StatusOK {
		return fmt.Errorf("HEAD bucket %q: HTTP %d", bucket, status)
	}
	return nil
}

// s3Do sends a body-less request signed with Signature V4 and returns the
// status code.
func s3Do(ctx context.Context, method string, u *url.URL, region string, cred credentials) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, u.String(), nil)
	if err != nil {
		return 0, err
	}
	signV4(req, cred, region, time.Now())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// emptySHA256 is the hex SHA-256 of an empty payload.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// signV4 adds AWS Signature V4 headers for a request without a body or a
// query string, signing host, x-amz-content-sha256 and x-amz-date.
func signV4(req *http.Request, cred credentials, region string, now time.Time) {
	amzDate := now.UTC().Format("20060102T150405Z")
	day := amzDate[:8]
	req.Header.Set("X-Amz-Date", amzDate)
	req.Header.Set("X-Amz-Content-Sha256", emptySHA256)
	const signed = "host;x-amz-content-sha256;x-amz-date"
	path := req.URL.EscapedPath()
	if path == "" {
		path = "/"
	}
	canonical := strings.Join([]string{
		req.Method,
		path,
		req.URL.RawQuery,
		"host:" + req.URL.Host + "\n" +
			"x-amz-content-sha256:" + emptySHA256 + "\n" +
			"x-amz-date:" + amzDate + "\n",
		signed,
		emptySHA256,
	}, "\n")
	scope := day + "/" + region + "/s3/aws4_request"
	sum := sha256.Sum256([]byte(canonical))
	toSign := "AWS4-HMAC-SHA256\n" + amzDate + "\n" + scope + "\n" + hex.EncodeToString(sum[:])
	key := hmacSHA256([]byte("AWS4"+cred.secret), day)
	key = hmacSHA256(key, region)
	key = hmacSHA256(key, "s3")
	key = hmacSHA256(key, "aws4_request")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential="+cred.access+"/"+scope+
		", SignedHeaders="+signed+", Signature="+hex.EncodeToString(hmacSHA256(key, toSign)))
}

func hmacSHA256(key []byte, data string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(data))
	return m.Sum(nil)
}
