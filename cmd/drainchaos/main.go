// Command drainchaos runs the durable mode's chaos test (internal/chaos)
// and prints its report; it exits 1 if anything was lost beyond the kill -9
// bound, counted twice, or posted twice. scripts/chaos runs it with a
// Postgres installation found (TEST_PG_BIN, TEST_PG_USER).
//
//	drainchaos [--duration 3m] [--webs 3] [--seed N] [--rate 15] [--frames 40] [--dir DIR]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/drainmeter/drainmeter/internal/chaos"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("drainchaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	cfg := chaos.Config{PGBin: os.Getenv("TEST_PG_BIN"), PGUser: os.Getenv("TEST_PG_USER"), Log: stderr}
	fs.DurationVar(&cfg.Duration, "duration", 3*time.Minute, "how long to load (at least 3m; a cycle of every event takes about 3m)")
	fs.IntVar(&cfg.Webs, "webs", 3, "web dynos (2 or 3)")
	fs.Uint64Var(&cfg.Seed, "seed", uint64(time.Now().UnixNano()%1_000_000), "the load's seed")
	fs.IntVar(&cfg.Rate, "rate", 15, "batches per second")
	fs.IntVar(&cfg.Frames, "frames", 40, "frames per batch")
	fs.StringVar(&cfg.Dir, "dir", "", "keep the logs here (default: a temporary directory, kept only if the run fails)")
	fs.StringVar(&cfg.Binary, "binary", "", "the drainmeter binary (default: built from this checkout)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintln(stderr, "drainchaos: no arguments, only flags")
		return 2
	}
	rep, err := chaos.Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, "drainchaos:", err)
		return 1
	}
	rep.Write(stdout)
	if !rep.OK() {
		return 1
	}
	return 0
}
