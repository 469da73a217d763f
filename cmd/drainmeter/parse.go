package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/outlet"
	"github.com/drainmeter/drainmeter/outlet/librato"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

const parseUsage = `usage: drainmeter parse [--json | --rollup [--format log|prometheus|otlp|librato]] [--prefix P] [--source-prefix S] [--routes T1,T2 --route-metrics MODE]

Reads stdin and prints one measurement per line. Each line's shape is
detected on its own, so input may mix:
  - a drain body: octet-counted frames "LEN <PRI>1 TS host APP PROCID - MSG"
  - one syslog frame per line: "<PRI>1 TS host APP PROCID - MSG"
  - 'heroku logs' output: "2024-05-01T12:34:01.000001+00:00 app[web.1]: MSG"
  - 'heroku local' (foreman) output: "21:00:00 web.1 | MSG" (that time today)
  - a line without its time: "app[web.1]: MSG", "heroku[router]: MSG", "web.1: MSG"
  - a message alone: "measure#db.latency=4ms" (time: now; no source unless source=)
Blank lines and lines starting with # are skipped. Rejects go to stderr with
their reason, and a summary ends the output there: lines read, measurements,
rejects by reason. Lines read but no measurement in them: exit status 1.

--rollup prints each closed minute (once the input's timestamps are --grace
past its end, or at the end of the input) as an outlet would send it, names
included, per dyno (web.1), per process type (web) and for the whole app
(drainmeter.rollup=app; not for Librato, which sums sources itself), with the prefixes:
  --format log         the log outlet's lines, as drainmeter web prints them (the default)
  --format prometheus  remote write's series: name{labels} value timestamp_ms
  --format otlp        OTLP's metrics, one data point a line (--otlp-temporality delta for delta)
  --format librato     Librato's gauges: NAME and NAME.median, NAME.perc95, NAME.perc99
Events (releases, deploys, rollbacks) show in log and librato.

--routes and --route-metrics show per-route series of router lines: as a
route="GET /users/:id" label (and in Librato's names).

  echo 'measure#db.latency=4ms' | drainmeter parse
  heroku logs -t -a myapp | drainmeter parse --rollup --format prometheus
  heroku logs -a myapp -n 1500 | drainmeter parse --rollup --route-metrics auto --routes /users/:id

flags:
`

// runParse is the local tool: stdin in, measurements or rollups out. Its
// steps: the flags (parseFlags), the input (inputReader), the parser and
// the rollups (parseRun), the output (the measurement's line, or the
// minute as --format's outlet sends it) and the summary.
func runParse(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	opts, err := parseFlags(args, stdout, stderr)
	if errors.Is(err, flag.ErrHelp) { // the usage went to stdout
		return nil
	} else if err != nil {
		return err
	}
	w := bufio.NewWriter(stdout)
	defer w.Flush()
	r := newParseRun(opts, w, stderr)
	if err := r.read(ctx, newInputReader(stdin)); err != nil {
		return err
	}
	return r.finish()
}

// parseOpts are parse's flags, and what is read from them.
type parseOpts struct {
	asJSON, roll, processTypes, pctGauges                                 bool
	prefix, sourcePrefix, pcts, routes, routeMetrics, format, temporality string
	grace                                                                 time.Duration

	percentiles []float64
	routeList   []string
	routeMode   parse.RouteMode
	printer     *rollupPrinter // --format's; nil for librato, which parse prints itself
}

// parseFlags reads parse's flags. --help prints the usage to stdout and
// returns flag.ErrHelp; a bad flag prints it to stderr and returns
// errUsage.
func parseFlags(args []string, stdout, stderr io.Writer) (*parseOpts, error) {
	o := &parseOpts{}
	fs := flag.NewFlagSet("parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below: to stdout when asked for
	fs.BoolVar(&o.asJSON, "json", false, "print each measurement as one line of JSON")
	fs.BoolVar(&o.roll, "rollup", false, "print per-minute rollups, as --format's outlet sends them, instead of measurements")
	fs.StringVar(&o.prefix, "prefix", "", "metric name prefix")
	fs.StringVar(&o.sourcePrefix, "source-prefix", "", "source prefix")
	fs.DurationVar(&o.grace, "grace", 90*time.Second, "with --rollup: print a minute once the input's timestamps are this far past its end")
	fs.StringVar(&o.pcts, "percentiles", "50,95,99", "with --rollup: percentiles to report")
	fs.BoolVar(&o.processTypes, "process-types", true, "with --rollup: also roll web.1, web.2 … into a 'web' series")
	fs.StringVar(&o.routes, "routes", "", "route templates, comma-separated, first match wins: /users/:id,/api/* (with --route-metrics)")
	fs.StringVar(&o.routeMetrics, "route-metrics", "", "per-route series of router lines: off, templates or auto (default: templates with --routes, else off)")
	fs.StringVar(&o.format, "format", "log", "with --rollup: as which outlet sends them: log (the log outlet's lines), prometheus (remote write's series), otlp (OTLP's metrics and points) or librato (Librato's gauges)")
	fs.StringVar(&o.temporality, "otlp-temporality", "cumulative", "with --format otlp: cumulative or delta")
	fs.BoolVar(&o.pctGauges, "otlp-percentile-gauges", false, "with --format otlp: also the percentiles as gauges NAME.p50 …")
	if err := fs.Parse(args); err != nil {
		out := stderr
		if errors.Is(err, flag.ErrHelp) {
			out = stdout
		}
		fmt.Fprint(out, parseUsage)
		fs.SetOutput(out)
		fs.PrintDefaults()
		if out == stdout {
			return nil, flag.ErrHelp
		}
		return nil, errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parse: unexpected argument %q\n", fs.Arg(0))
		return nil, errUsage
	}
	return o, o.check(fs)
}

// check reads the values of the flags set in fs: percentiles, routes, and
// the printer of --format.
func (o *parseOpts) check(fs *flag.FlagSet) error {
	var err error
	if o.percentiles, err = parsePercentiles(o.pcts); err != nil {
		return fmt.Errorf("parse: --percentiles: %w", err)
	}
	if o.routeList, err = parse.ParseRoutes(o.routes); err != nil {
		return fmt.Errorf("parse: --routes: %w", err)
	}
	if o.routeMode, err = parse.ParseRouteMode(o.routeMetrics); err != nil {
		return fmt.Errorf("parse: --route-metrics: %w", err)
	}
	if o.routeMetrics == "" {
		o.routeMode = parse.ImpliedRouteMode(o.routeMode, o.routeList)
	}
	formatSet := false
	fs.Visit(func(f *flag.Flag) {
		formatSet = formatSet || f.Name == "format" || f.Name == "otlp-temporality" || f.Name == "otlp-percentile-gauges"
	})
	if formatSet && !o.roll {
		return errors.New("parse: --format and the --otlp flags go with --rollup")
	}
	if o.format == "librato" {
		return nil
	}
	temp := outlet.Temporality(strings.ToLower(o.temporality))
	if temp != outlet.Cumulative && temp != outlet.Delta {
		return fmt.Errorf("parse: --otlp-temporality %q: cumulative or delta", o.temporality)
	}
	if o.printer, err = newRollupPrinter(o.format, temp, o.pctGauges, o.percentiles, "local"); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	return nil
}

// parseRun is one run of parse: the parser, with --rollup the rollups, and
// the counts of the summary.
type parseRun struct {
	opts   *parseOpts
	w      *bufio.Writer // stdout
	stderr io.Writer
	p      *parse.Parser

	store   *rollup.Store // with --rollup
	ds      *stats.Counters
	batch   []parse.Measurement // a frame's measurements, for the store
	eventAt time.Time           // the latest timestamp read: --rollup's clock
	line    []byte              // a measurement's line

	lines, measurements, unpostable uint64
	rejects                         map[string]uint64 // by reason, besides the parser's
	printErr                        error             // the first error of --format's printer
}

func newParseRun(o *parseOpts, w *bufio.Writer, stderr io.Writer) *parseRun {
	r := &parseRun{opts: o, w: w, stderr: stderr, rejects: map[string]uint64{}}
	r.p = parse.NewParser(parse.Options{Prefix: o.prefix, SourcePrefix: o.sourcePrefix, ProcessTypes: o.roll && o.processTypes,
		RouteMetrics: o.routeMode, Routes: o.routeList})
	r.p.OnReject = func(reason parse.Reason, text []byte) {
		if len(text) > 200 {
			text = text[:200]
		}
		fmt.Fprintf(stderr, "reject reason=%s text=%q\n", reason, text)
	}
	if o.roll {
		r.store = rollup.NewStore(rollup.Config{Grace: o.grace, MaxSeriesPerDrain: 1 << 30, MaxFuture: 1 << 62, MaxRoutesPerDrain: 1 << 30, AppRollup: true})
		r.ds = stats.NewRegistry().Drain("local")
	}
	return r
}

// read parses the input's records until its end (or ctx's).
func (r *parseRun) read(ctx context.Context, in *inputReader) error {
	emit := r.emit
	for ctx.Err() == nil {
		rec, err := in.next()
		if err != nil {
			if err == io.EOF {
				break
			}
			return fmt.Errorf("parse: reading stdin: %w", err)
		}
		now := time.Now()
		r.lines++
		switch rec.kind {
		case recFrame:
			r.p.Frame(rec.data, now, emit)
		case recHerokuLogs:
			r.p.Message(rec.header, now, emit)
		case recBare:
			before, rejected := r.measurements, r.p.Rejects.Total()
			r.p.Message(rec.header, now, emit)
			if r.measurements == before && r.p.Rejects.Total() == rejected {
				r.rejects["unrecognized_line"]++
				fmt.Fprintf(r.stderr, "reject reason=unrecognized_line text=%q\n", truncate(rec.data, 200))
			}
		case recUnknown:
			r.rejects[rec.reason]++
			fmt.Fprintf(r.stderr, "reject reason=%s text=%q\n", rec.reason, truncate(rec.data, 200))
		}
		r.afterFrame()
		if !r.opts.roll {
			_ = r.w.Flush() // a stream (heroku logs -t) shows up line by line
		}
	}
	return nil
}

// emit prints a measurement, or with --rollup keeps a copy for the store.
func (r *parseRun) emit(m *parse.Measurement) {
	r.measurements++
	switch {
	case r.opts.roll:
		c := *m
		c.Name, c.Unit, c.Source = clone(m.Name), clone(m.Unit), clone(m.Source)
		c.TypeSource, c.Member, c.Dims = clone(m.TypeSource), clone(m.Member), clone(m.Dims)
		r.batch = append(r.batch, c)
		if m.Time.After(r.eventAt) {
			r.eventAt = m.Time
		}
	case r.opts.asJSON:
		r.line = append(m.AppendJSON(r.line[:0]), '\n')
		_, _ = r.w.Write(r.line)
	default:
		r.line = appendMeasurementLogfmt(r.line[:0], m)
		_, _ = r.w.Write(r.line)
	}
}

// afterFrame, with --rollup, adds the frame's measurements to the store
// and prints the minutes that closed.
func (r *parseRun) afterFrame() {
	if !r.opts.roll || len(r.batch) == 0 {
		return
	}
	r.store.Add(r.eventAt, r.ds, r.batch)
	r.batch = r.batch[:0]
	r.printMinutes(r.store.Flush(r.eventAt))
	_ = r.w.Flush()
}

// printMinutes prints closed minutes as --format's outlet sends them.
func (r *parseRun) printMinutes(ms []*rollup.Minute) {
	for _, mn := range ms {
		if r.opts.printer == nil {
			r.printLibrato(mn)
			continue
		}
		if err := r.opts.printer.print(r.w, mn); err != nil && r.printErr == nil {
			r.printErr = err
		}
	}
}

// printLibrato prints a minute as the Librato outlet sends it: its gauges
// (no app rollup), and its events.
func (r *parseRun) printLibrato(mn *rollup.Minute) {
	var b []byte
	sums, _ := librato.Summaries(mn, r.opts.percentiles)
	for i := range sums {
		gauges, skipped, _ := librato.Gauges(mn.Start, sums[i:i+1], r.opts.percentiles)
		r.unpostable += uint64(skipped)
		for j := range gauges {
			b = appendGauge(b[:0], mn.Drain, mn.Start, sums[i].Kind, &gauges[j])
			_, _ = r.w.Write(b)
		}
	}
	events := mn.SortedEvents()
	for i := range events {
		b = rollup.AppendEventLogfmt(b[:0], mn.Drain, mn.Start, &events[i])
		_, _ = r.w.Write(b)
	}
}

// finish prints the minutes still open (--rollup), then the summary on
// stderr. Input without a measurement is an error.
func (r *parseRun) finish() error {
	if r.opts.roll {
		r.printMinutes(r.store.FlushAll())
		if n := r.ds.Get(stats.Late); n > 0 {
			fmt.Fprintf(r.stderr, "late=%d measurements arrived after their minute was printed (out of order by more than --grace)\n", n)
		}
	}
	_ = r.w.Flush() // the rollups before the summary
	if r.printErr != nil {
		return fmt.Errorf("parse: %w", r.printErr)
	}
	for reason := parse.Reason(0); reason < parse.NumReasons; reason++ {
		if n := r.p.Rejects[reason]; n > 0 {
			r.rejects[reason.String()] += n
		}
	}
	fmt.Fprintln(r.stderr, parseSummary(r.lines, r.measurements, r.unpostable, r.rejects))
	if r.lines > 0 && r.measurements == 0 {
		return fmt.Errorf("parse: no measurement in the input (%d lines): lines need measure#, count#, sample# or unique# keys, router or runtime metrics (drainmeter parse --help)", r.lines)
	}
	return nil
}

// parseSummary is parse's last line on stderr:
//
//	summary lines=5 measurements=4 rejected=2 rejected.bad_value=1 rejected.unrecognized_line=1
func parseSummary(lines, measurements, unpostable uint64, rejects map[string]uint64) string {
	var total uint64
	for _, n := range rejects {
		total += n
	}
	s := fmt.Sprintf("summary lines=%d measurements=%d rejected=%d", lines, measurements, total)
	for _, r := range slices.Sorted(maps.Keys(rejects)) {
		s += fmt.Sprintf(" rejected.%s=%d", r, rejects[r])
	}
	if unpostable > 0 {
		s += fmt.Sprintf(" unpostable=%d", unpostable) // numbers Librato cannot take
	}
	return s
}

// appendGauge appends one --rollup line: a gauge as Librato gets it.
func appendGauge(dst []byte, drain string, minute int64, kind parse.Kind, g *librato.Gauge) []byte {
	dst = append(dst, "at=rollup drain="...)
	dst = rollup.AppendValue(dst, drain)
	dst = append(dst, " minute="...)
	dst = time.Unix(minute, 0).UTC().AppendFormat(dst, time.RFC3339)
	dst = append(append(dst, " kind="...), kind.String()...)
	dst = rollup.AppendValue(append(dst, " name="...), g.Name)
	if g.Source != "" {
		dst = rollup.AppendValue(append(dst, " source="...), g.Source)
	}
	if g.Attributes != nil && g.Attributes.DisplayUnitsLong != "" {
		dst = rollup.AppendValue(append(dst, " unit="...), g.Attributes.DisplayUnitsLong)
	}
	if g.Count != nil {
		dst = strconv.AppendInt(append(dst, " count="...), *g.Count, 10)
		dst = rollup.AppendFloat(append(dst, " sum="...), *g.Sum)
		dst = rollup.AppendFloat(append(dst, " min="...), *g.Min)
		dst = rollup.AppendFloat(append(dst, " max="...), *g.Max)
		if g.SumSquares != nil {
			dst = rollup.AppendFloat(append(dst, " sum_squares="...), *g.SumSquares)
		}
	} else if g.Value != nil {
		dst = rollup.AppendFloat(append(dst, " value="...), *g.Value)
	}
	return append(dst, '\n')
}

func clone(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return append([]byte(nil), b...)
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// appendMeasurementLogfmt is the default output: one logfmt line.
func appendMeasurementLogfmt(dst []byte, m *parse.Measurement) []byte {
	dst = append(dst, "kind="...)
	dst = append(dst, m.Kind.String()...)
	dst = append(dst, " name="...)
	dst = rollup.AppendValue(dst, string(m.Name))
	dst = rollup.AppendFloat(append(dst, " value="...), m.Value)
	switch m.Kind {
	case parse.Unique:
		dst = rollup.AppendValue(append(dst, " member="...), string(m.Member))
	case parse.Event:
		dst = rollup.AppendValue(append(dst, " title="...), string(m.Member))
	}
	if len(m.Unit) > 0 {
		dst = rollup.AppendValue(append(dst, " unit="...), string(m.Unit))
	}
	if len(m.Source) > 0 {
		dst = rollup.AppendValue(append(dst, " source="...), string(m.Source))
	}
	parse.EachDim(string(m.Dims), func(k, v string) {
		dst = rollup.AppendValue(append(append(append(dst, ' '), k...), '='), v)
	})
	dst = append(dst, " time="...)
	dst = m.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '\n')
}

type recKind int

const (
	recFrame      recKind = iota
	recHerokuLogs         // a header read from the line: heroku logs, heroku local, app[web.1]: …
	recBare               // a message alone
	recUnknown
)

type record struct {
	kind   recKind
	data   []byte
	header parse.Header
	reason string
}

// inputReader splits stdin into records: octet-counted frames, syslog
// lines, or 'heroku logs' lines.
type inputReader struct {
	br  *bufio.Reader
	buf []byte
	now func() time.Time
}

func newInputReader(r io.Reader) *inputReader {
	return &inputReader{br: bufio.NewReaderSize(r, drain.MaxFrameBytes+32), now: time.Now}
}

func (in *inputReader) next() (record, error) {
	for {
		b, err := in.br.Peek(1)
		if err != nil {
			return record{}, err
		}
		switch c := b[0]; {
		case c == '\n' || c == '\r' || c == ' ' || c == '\t':
			_, _ = in.br.ReadByte()
			continue
		case c == '#':
			if _, err := in.line(); err != nil {
				return record{}, err
			}
			continue
		case c >= '0' && c <= '9':
			if n, ok := in.octetCount(); ok {
				return in.frame(n)
			}
		}
		line, err := in.line()
		if err != nil && len(line) == 0 {
			return record{}, err
		}
		line = stripANSI(line) // heroku local and foreman color their output on a terminal
		if len(line) > 0 && line[0] == '<' {
			return record{kind: recFrame, data: line}, nil
		}
		if h, ok := parse.ParseHerokuLogsLine(line); ok {
			return record{kind: recHerokuLogs, header: h, data: line}, nil
		}
		if h, ok := parseForemanLine(line, in.now()); ok {
			return record{kind: recHerokuLogs, header: h, data: line}, nil
		}
		if h, ok := parseProcLine(line); ok {
			return record{kind: recHerokuLogs, header: h, data: line}, nil
		}
		// A bare message, as an app logs it: the time is now, and there is
		// no source unless the line says source=.
		return record{kind: recBare, header: parse.Header{App: []byte("app"), Msg: line}, data: line}, nil
	}
}

// stripANSI removes terminal escape sequences (ESC [ … letter) from b, in
// place.
func stripANSI(b []byte) []byte {
	if bytes.IndexByte(b, 0x1b) < 0 {
		return b
	}
	out := b[:0]
	for i := 0; i < len(b); i++ {
		if b[i] == 0x1b && i+1 < len(b) && b[i+1] == '[' {
			j := i + 2
			for j < len(b) && (b[j] < 0x40 || b[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		out = append(out, b[i])
	}
	return out
}

// parseForemanLine reads a line of heroku local (or foreman, or
// node-foreman): "21:00:00 web.1 | MSG", the clock maybe followed by AM or
// PM, the process name padded with spaces. The time is that clock today,
// in the local time zone (yesterday if that is ahead of now: pasted from
// before midnight).
func parseForemanLine(line []byte, now time.Time) (parse.Header, bool) {
	var h parse.Header
	clock, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(clock) < 7 || len(clock) > 8 {
		return h, false
	}
	c, err := time.Parse("15:04:05", string(clock))
	if err != nil {
		return h, false
	}
	hour := c.Hour()
	if r := bytes.TrimLeft(rest, " "); len(r) >= 3 && (bytes.HasPrefix(r, []byte("AM ")) || bytes.HasPrefix(r, []byte("PM "))) {
		if hour > 12 || hour == 0 {
			return h, false
		}
		hour %= 12
		if r[0] == 'P' {
			hour += 12
		}
		rest = r[3:]
	}
	proc, msg, ok := bytes.Cut(bytes.TrimLeft(rest, " "), []byte("|"))
	proc = bytes.TrimSpace(proc)
	if !ok || len(proc) == 0 || bytes.IndexByte(proc, ' ') >= 0 {
		return h, false
	}
	local := now.Local()
	t := time.Date(local.Year(), local.Month(), local.Day(), hour, c.Minute(), c.Second(), 0, time.Local)
	if t.After(now.Add(time.Minute)) {
		t = t.AddDate(0, 0, -1)
	}
	h.Time, h.App, h.ProcID, h.Msg = t, []byte("app"), proc, bytes.TrimLeft(msg, " ")
	return h, true
}

// parseProcLine reads a line without a timestamp that names its process:
// "app[web.1]: MSG", "heroku[router]: MSG" (as Heroku's dashboard shows
// them) or "web.1: MSG". The time is now.
func parseProcLine(line []byte) (parse.Header, bool) {
	var h parse.Header
	head, msg, ok := bytes.Cut(line, []byte(": "))
	if !ok {
		head, ok = bytes.CutSuffix(line, []byte(":"))
		if !ok {
			return h, false
		}
	}
	if app, proc, ok := bytes.Cut(head, []byte("[")); ok {
		proc, ok = bytes.CutSuffix(proc, []byte("]"))
		if !ok || !isWord(app) || !isProcName(proc) {
			return h, false
		}
		h.App, h.ProcID, h.Msg = app, proc, msg
		return h, true
	}
	if !parse.IsDynoName(head) {
		return h, false
	}
	h.App, h.ProcID, h.Msg = []byte("app"), head, msg
	return h, true
}

// isWord reports whether b is 1 to 64 letters, digits, '_' or '-'.
func isWord(b []byte) bool {
	if len(b) == 0 || len(b) > 64 {
		return false
	}
	for _, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// isProcName reports whether b is a PROCID: words joined by dots (web.1,
// router, run.1234).
func isProcName(b []byte) bool {
	for w := range bytes.SplitSeq(b, []byte(".")) {
		if !isWord(w) {
			return false
		}
	}
	return len(b) > 0
}

// octetCount peeks at "LEN <" and, if it is there, consumes "LEN ".
func (in *inputReader) octetCount() (int, bool) {
	b, _ := in.br.Peek(12)
	n, i := 0, 0
	for i < len(b) && i < 10 && b[i] >= '0' && b[i] <= '9' {
		n = n*10 + int(b[i]-'0')
		i++
	}
	if i == 0 || i+1 >= len(b) || b[i] != ' ' || b[i+1] != '<' || n == 0 {
		return 0, false
	}
	_, _ = in.br.Discard(i + 1)
	return n, true
}

func (in *inputReader) frame(n int) (record, error) {
	if n > drain.MaxFrameBytes {
		if _, err := in.br.Discard(n); err != nil {
			return record{}, io.ErrUnexpectedEOF
		}
		return record{kind: recUnknown, data: []byte(strconv.Itoa(n) + " bytes"), reason: "frame_too_long"}, nil
	}
	if cap(in.buf) < n {
		in.buf = make([]byte, n)
	}
	in.buf = in.buf[:n]
	if _, err := io.ReadFull(in.br, in.buf); err != nil {
		return record{kind: recUnknown, data: in.buf, reason: "truncated_frame"}, nil
	}
	return record{kind: recFrame, data: in.buf}, nil
}

// line reads one line without its LF; lines longer than the buffer are cut.
func (in *inputReader) line() ([]byte, error) {
	in.buf = in.buf[:0]
	for {
		chunk, err := in.br.ReadSlice('\n')
		if len(in.buf)+len(chunk) <= drain.MaxFrameBytes {
			in.buf = append(in.buf, chunk...)
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if n := len(in.buf); n > 0 && in.buf[n-1] == '\n' {
			in.buf = in.buf[:n-1]
		}
		if err == io.EOF && len(in.buf) > 0 {
			err = nil
		}
		return in.buf, err
	}
}
