package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// ValidateAddr checks an HTTP listen address: host:port with a numeric
// port (host may be empty: every interface). "" is valid and means off.
func ValidateAddr(addr string) error {
	if addr == "" {
		return nil
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || (n == 0 && port != "0") {
		return fmt.Errorf("port %q must be 0-65535", port)
	}
	return nil
}

// Server serves a process's /metrics (Prometheus text format), /healthz
// (200 while the process runs) and /readyz (503 until SetReady(true): the
// process has started and registered itself in etcd; 200 after).
type Server struct {
	ln     net.Listener
	srv    *http.Server
	ready  atomic.Bool
	checks atomic.Pointer[[]func() error]
	done   chan struct{}
}

// AddReadyCheck makes /readyz answer 503 with check's error while check
// fails (for example: etcd refuses writes), even once ready.
func (s *Server) AddReadyCheck(check func() error) {
	for {
		old := s.checks.Load()
		var next []func() error
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, check)
		if s.checks.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Listen binds addr and serves g's metrics there until Close.
func Listen(addr string, g prometheus.Gatherer, log *slog.Logger) (*Server, error) {
	if err := ValidateAddr(addr); err != nil {
		return nil, err
	}
	if addr == "" {
		return nil, errors.New("empty address")
	}
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	s := &Server{ln: ln, done: make(chan struct{})}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorLog: slogPrinter{log}}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		if !s.ready.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "starting: not registered in etcd yet")
			return
		}
		if checks := s.checks.Load(); checks != nil {
			for _, check := range *checks {
				if err := check(); err != nil {
					w.WriteHeader(http.StatusServiceUnavailable)
					fmt.Fprintln(w, "not ready:", err)
					return
				}
			}
		}
		fmt.Fprintln(w, "ready")
	})
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics HTTP server stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return s, nil
}

// Addr is the bound address.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// SetReady sets what /readyz answers.
func (s *Server) SetReady(ready bool) { s.ready.Store(ready) }

// Close stops serving (scrapes in progress get up to 2 s).
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		err = s.srv.Close()
	}
	<-s.done
	return err
}

// slogPrinter is promhttp's error log.
type slogPrinter struct{ log *slog.Logger }

func (p slogPrinter) Println(v ...any) { p.log.Warn("metrics scrape", "err", fmt.Sprint(v...)) }
