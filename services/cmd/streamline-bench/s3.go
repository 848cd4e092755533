package main

import (
	"fmt"
	"net/http/httptest"
	"os"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/streamline-dev/streamline/shared/objstore/objstoretest"
)

// startS3 serves an in-memory S3 (gofakes3) behind the fault proxy with
// the named latency model and returns the s3:// URL of its bucket and the
// proxy (to inject an outage).
func startS3(model string) (url string, proxy *objstoretest.FaultProxy, stop func(), err error) {
	var lat objstoretest.Latency
	switch model {
	case "none":
	case "standard":
		lat = objstoretest.S3Standard
	case "express":
		lat = objstoretest.S3Express
	default:
		return "", nil, nil, fmt.Errorf("unknown latency model %q (none, standard, express)", model)
	}
	backend := s3mem.New()
	if err := backend.CreateBucket("bench"); err != nil {
		return "", nil, nil, err
	}
	s3 := httptest.NewServer(gofakes3.New(backend, gofakes3.WithLogger(gofakes3.DiscardLog())).Server())
	proxy, err = objstoretest.NewFaultProxy(s3.URL)
	if err != nil {
		s3.Close()
		return "", nil, nil, err
	}
	if lat != nil {
		proxy.SetLatency(lat)
	}
	front := httptest.NewServer(proxy)
	// gofakes3 accepts any credentials, but the SDK wants some.
	os.Setenv("AWS_ACCESS_KEY_ID", "bench")
	os.Setenv("AWS_SECRET_ACCESS_KEY", "bench")
	return "s3://bench?endpoint=" + front.URL + "&region=us-east-1&path_style=true", proxy, func() {
		proxy.Close()
		front.Close()
		s3.Close()
	}, nil
}
