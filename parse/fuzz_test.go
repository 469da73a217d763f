package parse

import (
	"bufio"
	"bytes"
	"math"
	"os"
	"strings"
	"testing"
)

// FuzzParser checks that no frame panics the parser and that everything it
// emits is well formed: a known kind, a name, a finite value, a member only
// for unique and at most MaxMemberBytes long, a title only for an event,
// dimensions only on route series and a bounded route, no e-mail in a title.
func FuzzParser(f *testing.F) {
	if b, err := os.ReadFile("testdata/heroku-frames.txt"); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			if line == "" || line[0] == '#' {
				continue
			}
			if _, frame, ok := strings.Cut(line, " "); ok {
				f.Add([]byte(frame + "\n"))
			}
		}
	}
	f.Add([]byte(`<190>1 2024-05-01T12:34:01Z host app web.1 - measure#a=1e3ms unique#u="x\"y" source="a b" msg="open`))
	f.Add([]byte(`<190>1 - host app web.1 - [sd a="]"] measure=x val=-.5E+2 units=ms`))
	for _, r := range routerLines {
		f.Add([]byte(routerHdr + r.in))
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		p := NewParser(Options{Prefix: "p", SourcePrefix: "s", ProcessTypes: true, RouteMetrics: RoutesAuto, Routes: fuzzRoutes})
		p.Frame(frame, recv, func(m *Measurement) {
			if m.Kind < Measure || m.Kind > Event {
				t.Fatalf("kind %d", m.Kind)
			}
			if len(m.Name) <= len("p.") {
				t.Fatalf("empty name from %q", frame)
			}
			if math.IsNaN(m.Value) || math.IsInf(m.Value, 0) {
				t.Fatalf("value %v from %q", m.Value, frame)
			}
			switch m.Kind {
			case Event:
				if len(m.Member) == 0 || len(m.Member) > MaxTitleBytes || bytes.IndexByte(m.Member, '@') >= 0 {
					t.Fatalf("title %q from %q", m.Member, frame)
				}
			default:
				if (m.Kind == Unique) != (len(m.Member) > 0) || len(m.Member) > MaxMemberBytes {
					t.Fatalf("member %q for %v", m.Member, m.Kind)
				}
			}
			if len(m.Dims) > 0 {
				route, ok := DimValue(string(m.Dims), RouteDim)
				if !ok || len(route) > MaxRouteBytes || !printable([]byte(route)) || len(m.TypeSource) > 0 || string(m.Source) != "s" {
					t.Fatalf("dims %q source %q from %q", m.Dims, m.Source, frame)
				}
			}
			if m.Time.IsZero() {
				t.Fatal("zero time")
			}
		})
	})
}

// FuzzParseValue checks the value grammar against strconv: whatever
// ParseValue accepts, strconv reads as the same number, of magnitude at most MaxValue.
func FuzzParseValue(f *testing.F) {
	for _, s := range []string{"4ms", "-3", "1e3", ".5%", "1.2GB", "5.", "1e999", "1.7976931348623157e308", "-1e101", "0x1F", "", "+1E-2req/s"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, unit, ok := ParseValue([]byte(s))
		if !ok {
			return
		}
		if !(math.Abs(v) <= MaxValue) {
			t.Fatalf("%q: %v, beyond MaxValue", s, v)
		}
		if s == "" {
			return
		}
		if !validUnit(unit) || !strings.HasSuffix(s, string(unit)) {
			t.Fatalf("%q: unit %q", s, unit)
		}
	})
}
