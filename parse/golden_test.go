package parse

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// recv is the receive time the tests pass; frames with a readable timestamp
// never show it.
var recv = time.Date(2024, 5, 1, 12, 35, 0, 0, time.UTC)

// describe renders everything a parser makes of one frame: one JSON line per
// measurement (with its process-type source, if any) and one line per reject.
func describe(p *Parser, frame []byte) string {
	var out bytes.Buffer
	before := p.Rejects
	p.Frame(frame, recv, func(m *Measurement) {
		out.Write(m.AppendJSON(nil))
		if len(m.TypeSource) > 0 {
			fmt.Fprintf(&out, " type_source=%s", m.TypeSource)
		}
		out.WriteByte('\n')
	})
	for r := Reason(0); r < NumReasons; r++ {
		if n := p.Rejects[r] - before[r]; n > 0 {
			fmt.Fprintf(&out, "reject %s %d\n", r, n)
		}
	}
	return out.String()
}

// TestHerokuFrames parses every frame of testdata/heroku-frames.txt
// (real-shaped frames of every kind Heroku sends) and compares the whole
// output with testdata/heroku-frames.golden, which was written down by hand
// and checked against README's "What you get".
func TestHerokuFrames(t *testing.T) {
	got := parseFrames(t, NewParser(Options{ProcessTypes: true}), false)
	golden(t, "testdata/heroku-frames.golden", got)
}

// TestHerokuFramesRoutes: the route series of the same frames, with
// automatic normalization and a template, are in
// testdata/heroku-frames-routes.golden (only the measurements with a route).
func TestHerokuFramesRoutes(t *testing.T) {
	p := NewParser(Options{ProcessTypes: true, RouteMetrics: RoutesAuto, Routes: []string{"/perfil/:id/recurrencias/:rid"}})
	golden(t, "testdata/heroku-frames-routes.golden", parseFrames(t, p, true))
}

// parseFrames describes every frame of testdata/heroku-frames.txt; with
// onlyDims, only the measurements that have dimensions.
func parseFrames(t *testing.T, p *Parser, onlyDims bool) []byte {
	t.Helper()
	f, err := os.Open("testdata/heroku-frames.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got bytes.Buffer
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	frames := 0
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		frames++
		sp := bytes.IndexByte([]byte(line), ' ')
		n, err := strconv.Atoi(line[:sp])
		if err != nil {
			t.Fatalf("bad octet count in %q", line)
		}
		frame := line[sp+1:] + "\n"
		if n != len(frame) {
			t.Fatalf("octet count %d, frame is %d bytes: %q", n, len(frame), line)
		}
		d := describe(p, []byte(frame))
		if onlyDims {
			var keep []string
			for l := range strings.Lines(d) {
				if strings.Contains(l, `"dims":`) {
					keep = append(keep, l)
				}
			}
			if len(keep) == 0 {
				continue
			}
			d = strings.Join(keep, "")
		}
		fmt.Fprintf(&got, "== %.100s\n", line)
		got.WriteString(d)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if frames < 60 {
		t.Fatalf("read only %d frames", frames)
	}
	return got.Bytes()
}

func golden(t *testing.T, path string, got []byte) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		gl, wl := bytes.Split(got, []byte("\n")), bytes.Split(want, []byte("\n"))
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w []byte
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if !bytes.Equal(g, w) {
				t.Fatalf("%s differs at line %d:\n got: %s\nwant: %s", path, i+1, g, w)
			}
		}
	}
}
