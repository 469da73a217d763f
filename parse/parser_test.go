package parse

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

func TestParserTable(t *testing.T) {
	const hdr = "<190>1 2024-05-01T12:34:01.5+00:00 host app web.2 - "
	const at = `"time":"2024-05-01T12:34:01.5Z"`
	tests := []struct {
		name string
		opts Options
		in   string
		want string // whole output of describe
	}{
		{"all kinds", Options{}, hdr + `measure#a=1 measure.b=2s count#c sample#d=-3 unique#e=u42`,
			`{"kind":"measure","name":"a","value":1,"source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"b","value":2,"unit":"s","source":"web.2",` + at + "}\n" +
				`{"kind":"count","name":"c","value":1,"source":"web.2",` + at + "}\n" +
				`{"kind":"sample","name":"d","value":-3,"source":"web.2",` + at + "}\n" +
				`{"kind":"unique","name":"e","value":1,"member":"u42","source":"web.2",` + at + "}\n"},
		{"exponents signs units", Options{}, hdr + `measure#a=1e3ms measure#b=+.5% measure#c=-2.5E-1req/s measure#d=2em measure#e=5µs`,
			`{"kind":"measure","name":"a","value":1000,"unit":"ms","source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"b","value":0.5,"unit":"%","source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"c","value":-0.25,"unit":"req/s","source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"d","value":2,"unit":"em","source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"e","value":5,"unit":"µs","source":"web.2",` + at + "}\n"},
		{"bad values reject only their pair", Options{}, hdr + `measure#a=abc measure#b=5. measure#c=NaN measure#d=1e999 measure#e=0x1F measure#f=3 count#=1 unique#u=`,
			`{"kind":"measure","name":"f","value":3,"source":"web.2",` + at + "}\n" +
				"reject bad_value 5\nreject empty_name 1\nreject empty_member 1\n"},
		{"magnitudes above 1e100 are refused, DBL_MAX included", Options{}, hdr + `count#c=1.7976931348623157e308 measure#m=1e308 count#n=-1.7e308 sample#s=1.0000001e100 sample#t=1e100 count#u=-1e100ms measure#v=1e-300`,
			`{"kind":"sample","name":"t","value":1e+100,"source":"web.2",` + at + "}\n" +
				`{"kind":"count","name":"u","value":-1e+100,"unit":"ms","source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"v","value":1e-300,"source":"web.2",` + at + "}\n" +
				"reject bad_value 4\n"},
		{"long member", Options{}, hdr + `unique#u=` + strings.Repeat("x", 129) + ` unique#v="a \"b\""`,
			`{"kind":"unique","name":"v","value":1,"member":"a \"b\"","source":"web.2",` + at + "}\n" +
				"reject long_member 1\n"},
		{"names, sources and units over 255 bytes", Options{}, hdr + `count#` + strings.Repeat("n", 255) + ` count#` + strings.Repeat("n", 256) +
			` measure#u=1` + strings.Repeat("u", 256) + ` measure#v=2` + strings.Repeat("v", 255),
			`{"kind":"count","name":"` + strings.Repeat("n", 255) + `","value":1,"source":"web.2",` + at + "}\n" +
				`{"kind":"measure","name":"v","value":2,"unit":"` + strings.Repeat("v", 255) + `","source":"web.2",` + at + "}\n" +
				"reject long_name 2\n"},
		{"a long source rejects its line's measurements", Options{}, hdr + `source=` + strings.Repeat("s", 256) + ` count#a count#b`,
			"reject long_name 2\n"},
		{"the prefix counts", Options{Prefix: "p", SourcePrefix: "sp"}, hdr + `count#` + strings.Repeat("n", 253) + ` count#` + strings.Repeat("n", 254) +
			` source=` + strings.Repeat("s", 252),
			`{"kind":"count","name":"p.` + strings.Repeat("n", 253) + `","value":1,"source":"sp.` + strings.Repeat("s", 252) + `",` + at + "}\n" +
				"reject long_name 1\n"},
		{"a long router dyno", Options{}, `<158>1 2024-05-01T12:34:01.5+00:00 host heroku router - at=info dyno=` + strings.Repeat("d", 300) + ` status=200`,
			"reject long_name 2\n"},
		{"a long R code", Options{}, `<45>1 2024-05-01T12:34:01.5+00:00 host heroku web.2 - Error R` + strings.Repeat("1", 300),
			"reject long_name 1\n"},
		{"repeated key is one observation each", Options{}, hdr + `count#a=1 count#a=2`,
			`{"kind":"count","name":"a","value":1,"source":"web.2",` + at + "}\n" +
				`{"kind":"count","name":"a","value":2,"source":"web.2",` + at + "}\n"},
		{"explicit source wins, first non-empty", Options{}, hdr + `source= measure#a=1 source="db one" source=x`,
			`{"kind":"measure","name":"a","value":1,"source":"db one",` + at + "}\n"},
		{"prefixes and process type", Options{Prefix: "myapp", SourcePrefix: "prod", ProcessTypes: true}, hdr + `measure#a=1 sample#s=2 count#c unique#u=m1`,
			`{"kind":"measure","name":"myapp.a","value":1,"source":"prod.web.2",` + at + "} type_source=prod.web\n" +
				`{"kind":"sample","name":"myapp.s","value":2,"source":"prod.web.2",` + at + "}\n" +
				`{"kind":"count","name":"myapp.c","value":1,"source":"prod.web.2",` + at + "} type_source=prod.web\n" +
				`{"kind":"unique","name":"myapp.u","value":1,"member":"m1","source":"prod.web.2",` + at + "} type_source=prod.web\n"},
		{"no process type for a source that is not a dyno", Options{ProcessTypes: true}, hdr + `source=db1 unique#u=m1 count#c`,
			`{"kind":"unique","name":"u","value":1,"member":"m1","source":"db1",` + at + "}\n" +
				`{"kind":"count","name":"c","value":1,"source":"db1",` + at + "}\n"},
		{"source prefix without source", Options{SourcePrefix: "prod"}, "<190>1 2024-05-01T12:34:01.5+00:00 host app api - count#x",
			`{"kind":"count","name":"x","value":1,"source":"prod",` + at + "}\n"},
		{"unterminated quote keeps pairs before it", Options{}, hdr + `count#a=1 msg="oops count#b=1`,
			`{"kind":"count","name":"a","value":1,"source":"web.2",` + at + "}\n" + "reject unterminated_quote 1\n"},
		{"quote in free text is skipped", Options{}, hdr + `wrote "count#wins"`,
			`{"kind":"count","name":"wins","value":1,"source":"web.2",` + at + "}\n"},
		{"l2met v1 measure on an app line", Options{}, hdr + `measure=db.query val=12.5 units=ms`,
			`{"kind":"measure","name":"db.query","value":12.5,"unit":"ms","source":"web.2",` + at + "}\n"},
		{"structured data element skipped", Options{}, `<190>1 2024-05-01T12:34:01.5+00:00 host app web.2 - [meta x="a]b"] count#a`,
			`{"kind":"count","name":"a","value":1,"source":"web.2",` + at + "}\n"},
		{"no timestamp uses receive time", Options{}, `<190>1 - host app web.2 - count#a`,
			`{"kind":"count","name":"a","value":1,"source":"web.2","time":"2024-05-01T12:35:00Z"}` + "\n"},
		{"offset timestamp in UTC", Options{}, `<190>1 2010-10-06T21:51:12-07:00 host app web.2 - count#a`,
			`{"kind":"count","name":"a","value":1,"source":"web.2","time":"2010-10-07T04:51:12Z"}` + "\n"},
		{"crash", Options{}, `<45>1 2024-05-01T12:34:01.5+00:00 host heroku web.2 - State changed from up to crashed`,
			`{"kind":"count","name":"dyno.crashes","value":1,"source":"web.2",` + at + "}\n"},
		{"restart", Options{}, `<45>1 2024-05-01T12:34:01.5+00:00 host heroku web.2 - State changed from up to starting`,
			`{"kind":"count","name":"dyno.restarts","value":1,"source":"web.2",` + at + "}\n"},
		{"restart after a crash", Options{}, `<45>1 2024-05-01T12:34:01.5+00:00 host heroku web.2 - State changed from crashed to starting`,
			`{"kind":"count","name":"dyno.restarts","value":1,"source":"web.2",` + at + "}\n"},
		{"a new dyno is no restart", Options{}, `<45>1 2024-05-01T12:34:01.5+00:00 host heroku web.2 - State changed from down to starting`, ""},
		{"CRLF stripped", Options{}, hdr + "count#a=2\r\n",
			`{"kind":"count","name":"a","value":2,"source":"web.2",` + at + "}\n"},
		{"bad header", Options{}, `hello world`, "reject bad_header 1\n"},
		{"header too short", Options{}, `<190>1 2024-05-01T12:34:01Z host app`, "reject bad_header 1\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewParser(tt.opts)
			if got := describe(p, []byte(tt.in)); got != tt.want {
				t.Errorf("input %q\n got:\n%s\nwant:\n%s", tt.in, got, tt.want)
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	for _, s := range []string{
		"2024-05-01T12:34:01Z", "2024-05-01T12:34:01.123456789+02:30", "2024-02-29T00:00:00-00:00",
		"1999-12-31T23:59:59.9Z", "2100-03-01T00:00:00Z",
	} {
		got, ok := ParseTime([]byte(s))
		if !ok {
			t.Errorf("%s: not parsed", s)
			continue
		}
		want, err := timeParse(s)
		if err != nil || !got.Equal(want) {
			t.Errorf("%s: got %v want %v (%v)", s, got, want, err)
		}
	}
	for _, s := range []string{"-", "2023-02-29T00:00:00Z", "2024-05-01T12:34:01", "2024-05-01T12:34:01.Z",
		"2024-05-01T24:00:00Z", "2013-04-17T19:04:46Z+00:00", "2024-05-01T12:34:01.1234567890Z"} {
		if _, ok := ParseTime([]byte(s)); ok {
			t.Errorf("%s: parsed, want rejected", s)
		}
	}
}

func TestParseHerokuLogsLine(t *testing.T) {
	h, ok := ParseHerokuLogsLine([]byte("2024-05-01T12:34:01.000001+00:00 app[web.1]: measure#db.latency=4ms\n"))
	if !ok || string(h.App) != "app" || string(h.ProcID) != "web.1" || string(h.Msg) != "measure#db.latency=4ms" ||
		h.Time.Nanosecond() != 1000 {
		t.Fatalf("got %+v %v", h, ok)
	}
	if _, ok := ParseHerokuLogsLine([]byte("not a log line")); ok {
		t.Fatal("parsed garbage")
	}
}

// TestTimeCache: a parser reading many frames of the same second (its
// cache) reads every timestamp as ParseTime does.
func TestTimeCache(t *testing.T) {
	p := NewParser(Options{})
	for _, ts := range []string{
		"2024-05-01T12:34:56.789012+00:00", "2024-05-01T12:34:56.1Z", "2024-05-01T12:34:56-07:00", "2024-05-01T12:34:56.999999999+05:30",
		"2024-05-01T12:34:57Z", "2024-05-01T12:34:56Z", "2024-02-30T12:34:56Z", "2024-05-01T12:34:56.Z", "2016-12-31T23:59:60Z",
	} {
		want, wantOK := ParseTime([]byte(ts))
		var got time.Time
		ok := p.Frame([]byte("<190>1 "+ts+" host app web.1 - count#a"), time.Time{}, func(m *Measurement) { got = m.Time })
		if !ok || (wantOK && !got.Equal(want)) || (!wantOK && !got.IsZero()) {
			t.Errorf("%s: got %v (frame %v), want %v (%v)", ts, got, ok, want, wantOK)
		}
	}
}

// TestScanEnds checks the 8-bytes-at-a-time scans against byte loops.
func TestScanEnds(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	alphabet := []byte("ab=\" \t\x00\x7f\x80\xff!~é")
	for range 20000 {
		b := make([]byte, rng.IntN(40))
		for i := range b {
			b[i] = alphabet[rng.IntN(len(alphabet))]
		}
		i := rng.IntN(len(b) + 1)
		wantV, wantK := i, i
		for wantV < len(b) && b[wantV] > ' ' {
			wantV++
		}
		for wantK < len(b) && keyByte[b[wantK]] {
			wantK++
		}
		if got := valueEnd(b, i); got != wantV {
			t.Fatalf("valueEnd(%q, %d) = %d, want %d", b, i, got, wantV)
		}
		if got := keyEnd(b, i); got != wantK {
			t.Fatalf("keyEnd(%q, %d) = %d, want %d", b, i, got, wantK)
		}
	}
}

// TestBadTimestamps: a frame whose timestamp cannot be read is stamped with
// its receive time and counted; syslog's "-" (no time) is stamped alike,
// and not counted.
func TestBadTimestamps(t *testing.T) {
	recv := time.Date(2026, 12, 6, 10, 0, 30, 0, time.UTC)
	var p Parser
	var times []time.Time
	for _, ts := range []string{"2026-12-06T09:59:00Z", "yesterday", "2026-02-30T00:00:00Z", "-", "2026-12-06T09:59:00"} {
		frame := "<190>1 " + ts + " host app web.1 - count#c=1"
		if !p.Frame([]byte(frame), recv, func(m *Measurement) { times = append(times, m.Time) }) {
			t.Fatalf("%s: frame refused", ts)
		}
	}
	if p.BadTimestamps != 3 {
		t.Errorf("BadTimestamps = %d, want 3", p.BadTimestamps)
	}
	for i, at := range times[1:] {
		if !at.Equal(recv) {
			t.Errorf("frame %d: stamped %v, want the receive time", i+1, at)
		}
	}
	p.Reset(Options{})
	if p.BadTimestamps != 0 {
		t.Errorf("Reset left BadTimestamps %d", p.BadTimestamps)
	}
}
