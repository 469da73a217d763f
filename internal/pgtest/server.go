package pgtest

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
)

// Server is a private Postgres server that a test can stop and start.
type Server struct {
	URL  string // the postgres database on it
	bin  string
	user string
	dir  string
	port int
	tb   testing.TB
}

// NewServer initializes and starts a private server (initdb into a temp dir,
// a free loopback port), stopped when the test ends. It needs TEST_PG_BIN,
// which scripts/with-postgres sets.
func NewServer(tb testing.TB) *Server {
	tb.Helper()
	ServerURL(tb) // skip, or fail in CI, like the other database tests
	bin := os.Getenv("TEST_PG_BIN")
	if bin == "" {
		tb.Fatal("TEST_PG_BIN is not set: run the tests with ./scripts/test")
	}
	dir, err := os.MkdirTemp("", "drainmeter-pgserver")
	if err != nil {
		tb.Fatal(err)
	}
	s := &Server{bin: bin, user: os.Getenv("TEST_PG_USER"), dir: dir, tb: tb}
	if s.user != "" {
		_ = os.Chmod(dir, 0o755)
		if out, err := exec.Command("chown", s.user, dir).CombinedOutput(); err != nil {
			tb.Fatalf("chown: %v %s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	s.port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	s.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
	s.Start()
	tb.Cleanup(func() {
		_ = s.cmd("pg_ctl", "-D", filepath.Join(dir, "data"), "-m", "immediate", "-w", "stop").Run()
		os.RemoveAll(dir)
	})
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
	return s
}

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.user != "" {
		return exec.Command("runuser", append([]string{"-u", s.user, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *Server) run(name string, args ...string) {
	s.tb.Helper()
	if out, err := s.cmd(name, args...).CombinedOutput(); err != nil {
		s.tb.Fatalf("%s: %v\n%s", name, err, out)
	}
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start() {
	s.tb.Helper()
	s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "log"), "-w",
		"-o", "-p "+strconv.Itoa(s.port)+" -k "+s.dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
}

// Stop stops the server at once, as a crash or an outage would.
func (s *Server) Stop() {
	s.tb.Helper()
	s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
}
