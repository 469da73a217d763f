// Command drainmeter turns Heroku log drains into per-minute metrics.
//
//	drainmeter web        serve the drain (POST /logs) and /health
//	drainmeter parse      read frames or `heroku logs` lines from stdin, print measurements
//	drainmeter migrate    apply database migrations
//	drainmeter drains     manage the drains in the database
//	drainmeter keys       generate a DRAINMETER_KEY
//	drainmeter version    print the version
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"
)

// version is drainmeter's version, sent to Librato in the User-Agent.
const version = "0.1.0"

// main is the only place that touches the process: its arguments,
// environment, standard streams, signals, runtime limits and exit code.
func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	proc := process{environ: os.Environ, setMemoryLimit: debug.SetMemoryLimit, raiseFileLimit: raiseFileLimit}
	stopHups := func() {}
	if len(os.Args) > 1 && os.Args[1] == "web" {
		// Before anything else: a SIGHUP while starting must not kill it either.
		proc.hangups, stopHups = ignoreHangups()
	}
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr, proc)
	stopHups()
	stop()
	os.Exit(code)
}

// process is what run takes from the process besides getenv and the
// standard streams: what is one per process (signals, runtime limits), so
// that main alone sets it and in-process runs leave it alone. The zero
// process is an in-process run's: no other variable is set than getenv's,
// no SIGHUP comes, the runtime's memory limit and the file limit stay as
// they are (unknown to web).
type process struct {
	// environ lists the variables set, "K=V" (os.Environ): a variable set
	// to "" is set (PORT= is an error, not the default), and the ones
	// drainmeter does not read are named at start (typos). nil: none but
	// those getenv answers with a value.
	environ func() []string
	// hangups delivers the SIGHUPs that web ignores and logs (ignoreHangups).
	hangups <-chan os.Signal
	// setMemoryLimit sets the Go runtime's memory limit (debug.SetMemoryLimit).
	setMemoryLimit func(int64) int64
	// raiseFileLimit raises the open-file limit and returns it (0: unknown).
	raiseFileLimit func() (uint64, error)
	// clock is the wall clock web reads: when a minute is, when it closes,
	// when lanes post. nil: time.Now (main's, and most tests'); a test may
	// run a web on a faster clock to see a half hour of minutes in one.
	clock func() time.Time
}

// now returns the process's clock.
func (p process) now() func() time.Time {
	if p.clock == nil {
		return time.Now
	}
	return p.clock
}

// environment lists the variables set (nil: no list).
func (p process) environment() []string {
	if p.environ == nil {
		return nil
	}
	return p.environ()
}

// fileLimit raises the open-file limit if it may, and returns it (0: unknown).
func (p process) fileLimit() (uint64, error) {
	if p.raiseFileLimit == nil {
		return 0, nil
	}
	return p.raiseFileLimit()
}

const usage = `usage: drainmeter <command> [flags]

commands:
  web       serve the log drain (POST /logs) and GET /health; configured by environment variables
  parse     read a drain body, syslog frames or 'heroku logs' lines on stdin and print measurements
            (--json for JSON lines, --rollup for per-minute rollups; --help for more)
  migrate   apply pending database migrations (DATABASE_URL; Heroku's release phase runs it)
  drains    add, list, rm, rotate-secret, set, reencrypt drains in the database (drainmeter drains help)
  keys      keys generate: print a new DRAINMETER_KEY
  version   print the version

Every command takes --help. drainmeter web --help lists the config vars.
`

// isHelp reports whether a command's first argument asks for its usage.
func isHelp(arg string) bool {
	return arg == "-h" || arg == "--help" || arg == "-help" || arg == "help"
}

// run is the whole program; it returns the exit code. It reads the
// environment only through getenv (and proc.environ), stops when ctx is
// done (SIGTERM or SIGINT in main), and touches no other process-wide
// state than proc lets it: tests run it in-process, several at once.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer, proc process) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "web":
		err = runWeb(ctx, args[1:], getenv, proc, stdout)
	case "parse":
		err = runParse(ctx, args[1:], stdin, stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], getenv, stdout)
	case "drains":
		err = runDrains(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "keys":
		err = runKeys(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		if len(args) > 1 && isHelp(args[1]) {
			fmt.Fprint(stdout, "usage: drainmeter version\n\nPrints drainmeter's version.\n")
			break
		}
		fmt.Fprintln(stdout, "drainmeter", version)
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
	default:
		fmt.Fprintf(stderr, "drainmeter: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
	if err != nil {
		if err == errUsage {
			return 2
		}
		fmt.Fprintln(stderr, "drainmeter:", err)
		return 1
	}
	return 0
}
