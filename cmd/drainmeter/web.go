package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"time"
)

// recentIDsPerHour bounds the batch ids a web remembers per hour (two
// generations of an hour each), and so does the memory budget's dedup
// share. Past either, ids are kept for less than an hour.
const recentIDsPerHour = 1 << 18

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level)) // validated by Config
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: l}))
}

// runWeb serves until ctx is done, then shuts down in order: stop taking
// requests and finish those in flight, close every open minute, post
// everything pending, all within SHUTDOWN_TIMEOUT.
func runWeb(ctx context.Context, args []string, getenv func(string) string, proc process, stdout io.Writer) error {
	if len(args) > 0 {
		if isHelp(args[0]) {
			fmt.Fprint(stdout, configHelp())
			return nil
		}
		return fmt.Errorf("web takes no arguments (configure it with environment variables: drainmeter web --help)")
	}
	cfg, err := loadConfig(getenv, proc.environment())
	if err != nil {
		if len(cfg.warnings) > 0 { // a typo is often why: REMOTE_WRITE_ULR and REMOTE_WRITE_HEADERS
			return fmt.Errorf("%w\nwarnings:\n  %s", err, strings.Join(cfg.warnings, "\n  "))
		}
		return err
	}
	return serveWeb(ctx, cfg, stdout, proc, net.Listen)
}

// listenFunc opens the web's listener: net.Listen, or a test's.
type listenFunc func(network, address string) (net.Listener, error)

// serveWeb is the web's life, after its config: the mode is picked once
// (memory, or durable with DATABASE_URL), launched (the pipeline's
// consumers before the HTTP server that feeds them), served until ctx is
// done or serving fails, and landed in the reverse order. Every exit after
// the launch, a failed listen included, lands the same way: requests
// finished, every open minute closed, everything pending posted (or, with
// Postgres, written), within SHUTDOWN_TIMEOUT.
func serveWeb(ctx context.Context, cfg Config, stdout io.Writer, proc process, listen listenFunc) error {
	log := newLogger(stdout, cfg.LogLevel)
	for _, w := range cfg.warnings {
		log.Warn(w)
	}
	w := newWeb(cfg, log, stdout, proc)
	var m mode
	if cfg.DatabaseURL == "" {
		m = newMemory(w)
	} else {
		d, err := openDurable(ctx, w)
		if err != nil {
			return err
		}
		m = d
	}
	w.mount(m)
	m.Launch()
	err := w.Launch(m, proc.hangups, listen)
	if err == nil {
		err = w.wait(ctx)
	}
	return w.Land(m, err)
}

var errUsage = errors.New("usage")

// every calls f every d until ctx is done.
func every(ctx context.Context, d time.Duration, f func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// crew is goroutines that stop together: Stop cancels their context and
// waits until every one has returned.
type crew struct {
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

func newCrew() *crew {
	ctx, cancel := context.WithCancel(context.Background())
	return &crew{ctx: ctx, cancel: cancel}
}

// Go runs f in a goroutine of the crew, with the crew's context.
func (c *crew) Go(f func(ctx context.Context)) {
	c.wg.Go(func() { f(c.ctx) })
}

// Stop cancels the crew's context and waits for its goroutines.
func (c *crew) Stop() {
	c.cancel()
	c.wg.Wait()
}

// StopBy waits for the crew's goroutines to return by themselves until
// ctx is done; then it stops them (and waits anyway).
func (c *crew) StopBy(ctx context.Context) {
	done := make(chan struct{})
	go func() { c.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
	}
	c.Stop()
}
