package chaos

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/drainmeter/drainmeter/internal/logtest"
	"github.com/drainmeter/drainmeter/internal/tcpproxy"
)

// web is one web dyno (web.N): its own proxy in front of Postgres, so that
// it alone can be cut off, and the processes it has run, one at a time.
type web struct {
	name  string
	proxy *tcpproxy.Proxy

	mu  sync.Mutex
	cur *instance // nil while it is down
}

// instance is one process of a web dyno.
type instance struct {
	id      int // in the order started, across dynos
	web     *web
	cmd     *exec.Cmd
	url     string // http://127.0.0.1:PORT
	logPath string
	started time.Time
	done    chan struct{} // closed when it has exited
	exitErr error
}

func (i *instance) String() string { return fmt.Sprintf("%s (process %d)", i.web.name, i.id) }

// output returns everything the process wrote.
func (i *instance) output() string {
	b, _ := os.ReadFile(i.logPath)
	return string(b)
}

// cluster runs the web dynos.
type cluster struct {
	bin  string
	dir  string
	env  []string // common to every web
	webs []*web

	mu  sync.Mutex
	all []*instance
}

// start starts a process for w and waits until it listens.
func (c *cluster) start(w *web) (*instance, error) {
	c.mu.Lock()
	id := len(c.all) + 1
	c.mu.Unlock()
	inst := &instance{id: id, web: w, done: make(chan struct{}),
		logPath: filepath.Join(c.dir, fmt.Sprintf("%s.%d.log", w.name, id))}
	f, err := os.Create(inst.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(c.bin, "web")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "PORT=0", "DYNO=" + w.name,
		"DATABASE_URL=postgres://postgres@" + w.proxy.Addr() + "/postgres?sslmode=disable"}, c.env...)
	pr, pw := io.Pipe()
	cmd.Stdout = io.MultiWriter(f, pw)
	cmd.Stderr = f
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, err
	}
	inst.cmd, inst.started = cmd, time.Now()
	go func() {
		inst.exitErr = cmd.Wait()
		pw.Close()
		f.Close()
		close(inst.done)
	}()
	port := logtest.ListenedPort(pr)
	select {
	case p := <-port:
		inst.url = "http://127.0.0.1:" + p
	case <-inst.done:
		return nil, fmt.Errorf("%s exited before listening (%v):\n%s", w.name, inst.exitErr, tail(inst.output(), 20))
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-inst.done
		return nil, fmt.Errorf("%s did not listen within 30 s:\n%s", w.name, tail(inst.output(), 20))
	}
	c.mu.Lock()
	c.all = append(c.all, inst)
	c.mu.Unlock()
	w.mu.Lock()
	w.cur = inst
	w.mu.Unlock()
	return inst, nil
}

// live returns the processes the router sends to: every dyno's current one.
func (c *cluster) live() []*instance {
	var out []*instance
	for _, w := range c.webs {
		w.mu.Lock()
		if w.cur != nil {
			out = append(out, w.cur)
		}
		w.mu.Unlock()
	}
	return out
}

// current returns w's process, nil while it is down.
func (w *web) current() *instance {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cur
}

// down takes w's process out of the router once it has exited.
func (w *web) down(inst *instance) {
	w.mu.Lock()
	if w.cur == inst {
		w.cur = nil
	}
	w.mu.Unlock()
}

// terminate sends SIGTERM to w's process (the router keeps sending to it
// until it is gone, as Heroku's does) and waits for its exit.
func (c *cluster) terminate(w *web) (*instance, time.Duration, error) {
	inst := w.current()
	if inst == nil {
		return nil, 0, fmt.Errorf("%s is not running", w.name)
	}
	start := time.Now()
	if err := inst.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return inst, 0, err
	}
	select {
	case <-inst.done:
	case <-time.After(40 * time.Second):
		_ = inst.cmd.Process.Kill()
		<-inst.done
		w.down(inst)
		return inst, time.Since(start), errors.New("still running 40 s after SIGTERM; killed")
	}
	w.down(inst)
	return inst, time.Since(start), inst.exitErr
}

// kill sends SIGKILL to w's process and returns it and when it was sent.
func (c *cluster) kill(w *web) (*instance, time.Time, error) {
	inst := w.current()
	if inst == nil {
		return nil, time.Time{}, fmt.Errorf("%s is not running", w.name)
	}
	at := time.Now()
	if err := inst.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		return inst, at, err
	}
	<-inst.done
	w.down(inst)
	return inst, at, nil
}

// stopAll terminates every running process; the errors of those that did
// not exit cleanly are returned.
func (c *cluster) stopAll() []error {
	var errs []error
	for _, w := range c.webs {
		if w.current() == nil {
			continue
		}
		inst, _, err := c.terminate(w)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", inst, err))
		}
	}
	return errs
}

// killAll kills whatever still runs (on the way out after a failure).
func (c *cluster) killAll() {
	c.mu.Lock()
	all := append([]*instance(nil), c.all...)
	c.mu.Unlock()
	for _, inst := range all {
		select {
		case <-inst.done:
		default:
			_ = inst.cmd.Process.Kill()
			<-inst.done
		}
	}
}

// instances returns every process started, in order.
func (c *cluster) instances() []*instance {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*instance(nil), c.all...)
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
