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
	"syscall"
)

// version is drainmeter's version, sent to Librato in the User-Agent.
const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
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

// run is the whole program; it returns the exit code.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	var err error
	switch args[0] {
	case "web":
		err = runWeb(ctx, args[1:], stdout)
	case "parse":
		err = runParse(ctx, args[1:], stdin, stdout, stderr)
	case "migrate":
		err = runMigrate(ctx, args[1:], os.Getenv, stdout)
	case "drains":
		err = runDrains(ctx, args[1:], os.Getenv, stdin, stdout, stderr)
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
