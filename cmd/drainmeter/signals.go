package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

// ignoreHangups keeps SIGHUP from killing drainmeter web (Go's default for
// it is to exit at once, losing the open minutes). Some supervisors and
// terminals send it; it is not a request to stop (SIGTERM and SIGINT are),
// and there is no configuration to reload. main calls it, for web only,
// before anything else (a SIGHUP while starting must not kill it either),
// and the returned stop when the web is done; signals are the process's,
// so in-process runs never do.
func ignoreHangups() (hups <-chan os.Signal, stop func()) {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGHUP)
	return c, func() { signal.Stop(c) }
}

// logHangups logs every SIGHUP received until ctx is done.
func logHangups(ctx context.Context, hups <-chan os.Signal, log *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-hups:
			log.Warn("SIGHUP ignored: drainmeter keeps running (SIGTERM or SIGINT stop it, after closing and writing every open minute)")
		}
	}
}
