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

// Server is a private Postgres server that a test (or the chaos program)
// can stop and start.
type Server struct {
	URL  string // the postgres database on it
	Port int
	bin  string
	user string
	dir  string
	tb   testing.TB // nil outside a test
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
	s, err := Launch(bin, os.Getenv("TEST_PG_USER"))
	if err != nil {
		tb.Fatal(err)
	}
	s.tb = tb
	tb.Cleanup(s.Remove)
	return s
}

// Launch initializes and starts a private server outside a test: bin is the
// directory of initdb and pg_ctl, user the system user to run them as ("":
// this one; Postgres refuses to run as root). Remove stops it and deletes
// its files.
func Launch(bin, user string) (*Server, error) {
	dir, err := os.MkdirTemp("", "drainmeter-pgserver")
	if err != nil {
		return nil, err
	}
	s := &Server{bin: bin, user: user, dir: dir}
	if s.user != "" {
		_ = os.Chmod(dir, 0o755)
		if out, err := exec.Command("chown", s.user, dir).CombinedOutput(); err != nil {
			os.RemoveAll(dir)
			return nil, fmt.Errorf("pgtest: chown: %v %s", err, out)
		}
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	l.Close()
	if err := s.run("initdb", "-D", filepath.Join(dir, "data"), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := s.Up(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	s.URL = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.Port)
	return s, nil
}

func (s *Server) cmd(name string, args ...string) *exec.Cmd {
	path := filepath.Join(s.bin, name)
	if s.user != "" {
		return exec.Command("runuser", append([]string{"-u", s.user, "--", path}, args...)...)
	}
	return exec.Command(path, args...)
}

func (s *Server) run(name string, args ...string) error {
	if out, err := s.cmd(name, args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pgtest: %s: %v\n%s", name, err, out)
	}
	return nil
}

// Up starts the server and waits until it accepts connections.
func (s *Server) Up() error {
	return s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-l", filepath.Join(s.dir, "log"), "-w",
		"-o", "-p "+strconv.Itoa(s.Port)+" -k "+s.dir+" -c listen_addresses=127.0.0.1 -c fsync=off", "start")
}

// Down stops the server at once, as a crash or an outage would.
func (s *Server) Down() error {
	return s.run("pg_ctl", "-D", filepath.Join(s.dir, "data"), "-m", "immediate", "-w", "stop")
}

// Remove stops the server and deletes its files.
func (s *Server) Remove() {
	_ = s.Down()
	os.RemoveAll(s.dir)
}

// Start is Up in a test: a failure fails the test.
func (s *Server) Start() {
	s.tb.Helper()
	if err := s.Up(); err != nil {
		s.tb.Fatal(err)
	}
}

// Stop is Down in a test: a failure fails the test.
func (s *Server) Stop() {
	s.tb.Helper()
	if err := s.Down(); err != nil {
		s.tb.Fatal(err)
	}
}
