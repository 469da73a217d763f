package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/drainmeter/drainmeter/drain"
	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/rollup"
	"github.com/drainmeter/drainmeter/stats"
)

const parseUsage = `usage: drainmeter parse [--json | --rollup] [--prefix P] [--source-prefix S]

Reads stdin and prints one measurement per line. Input may mix:
  - a drain body: octet-counted frames "LEN <PRI>1 TS host APP PROCID - MSG"
  - one syslog frame per line: "<PRI>1 TS host APP PROCID - MSG"
  - 'heroku logs' output: "2024-05-01T12:34:01.000001+00:00 app[web.1]: MSG"
Blank lines and lines starting with # are skipped. Rejected pairs go to stderr
with their reason.

  heroku logs -t -a myapp | drainmeter parse --rollup

flags:
`

// runParse is the local tool: stdin in, measurements or rollups out.
func runParse(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parse", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {} // printed below: to stdout when asked for
	asJSON := fs.Bool("json", false, "print each measurement as one line of JSON")
	roll := fs.Bool("rollup", false, "print per-minute rollups (the log outlet's format) instead of measurements")
	prefix := fs.String("prefix", "", "metric name prefix")
	sourcePrefix := fs.String("source-prefix", "", "source prefix")
	grace := fs.Duration("grace", 90*time.Second, "with --rollup: print a minute once the input's timestamps are this far past its end")
	pcts := fs.String("percentiles", "50,95,99", "with --rollup: percentiles to report")
	processTypes := fs.Bool("process-types", true, "with --rollup: also roll web.1, web.2 … into a 'web' series")
	if err := fs.Parse(args); err != nil {
		out := stderr
		if errors.Is(err, flag.ErrHelp) {
			out = stdout
		}
		fmt.Fprint(out, parseUsage)
		fs.SetOutput(out)
		fs.PrintDefaults()
		if out == stdout {
			return nil
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parse: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	percentiles, err := parsePercentiles(*pcts)
	if err != nil {
		return fmt.Errorf("parse: --percentiles: %w", err)
	}

	w := bufio.NewWriter(stdout)
	defer w.Flush()
	p := parse.NewParser(parse.Options{Prefix: *prefix, SourcePrefix: *sourcePrefix, ProcessTypes: *roll && *processTypes})
	p.OnReject = func(r parse.Reason, text []byte) {
		if len(text) > 200 {
			text = text[:200]
		}
		fmt.Fprintf(stderr, "reject reason=%s text=%q\n", r, text)
	}

	var (
		line    []byte
		store   *rollup.Store
		ds      *stats.Drain
		batch   []parse.Measurement
		eventAt time.Time // the latest timestamp read: --rollup's clock
	)
	if *roll {
		store = rollup.NewStore(rollup.Config{Grace: *grace, MaxSeriesPerDrain: 1 << 30, MaxFuture: 1 << 62})
		ds = stats.NewRegistry().Drain("local")
	}
	printMinutes := func(ms []*rollup.Minute) {
		for _, mn := range ms {
			sums := mn.Summaries(percentiles)
			var b []byte
			for i := range sums {
				b = rollup.AppendLogfmt(b[:0], mn.Drain, mn.Start, &sums[i], percentiles)
				_, _ = w.Write(b)
			}
		}
	}
	emit := func(m *parse.Measurement) {
		switch {
		case *roll:
			c := *m
			c.Name, c.Unit, c.Source = clone(m.Name), clone(m.Unit), clone(m.Source)
			c.TypeSource, c.Member = clone(m.TypeSource), clone(m.Member)
			batch = append(batch, c)
			if m.Time.After(eventAt) {
				eventAt = m.Time
			}
		case *asJSON:
			line = append(m.AppendJSON(line[:0]), '\n')
			_, _ = w.Write(line)
		default:
			line = appendMeasurementLogfmt(line[:0], m)
			_, _ = w.Write(line)
		}
	}
	afterFrame := func() {
		if !*roll || len(batch) == 0 {
			return
		}
		store.Add(eventAt, ds, batch)
		batch = batch[:0]
		printMinutes(store.Flush(eventAt))
		_ = w.Flush()
	}

	in := newInputReader(stdin)
	for ctx.Err() == nil {
		rec, err := in.next()
		if err != nil {
			if err == io.EOF {
				break
			}
			return fmt.Errorf("parse: reading stdin: %w", err)
		}
		now := time.Now()
		switch rec.kind {
		case recFrame:
			p.Frame(rec.data, now, emit)
		case recHerokuLogs:
			p.Message(rec.header, now, emit)
		case recUnknown:
			fmt.Fprintf(stderr, "reject reason=%s text=%q\n", rec.reason, truncate(rec.data, 200))
		}
		afterFrame()
		if !*roll {
			_ = w.Flush() // a stream (heroku logs -t) shows up line by line
		}
	}
	if *roll {
		printMinutes(store.FlushAll())
		if n := ds.Get(stats.Late); n > 0 {
			fmt.Fprintf(stderr, "late=%d measurements arrived after their minute was printed (out of order by more than --grace)\n", n)
		}
	}
	return nil
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
	if m.Kind == parse.Unique {
		dst = rollup.AppendValue(append(dst, " member="...), string(m.Member))
	}
	if len(m.Unit) > 0 {
		dst = rollup.AppendValue(append(dst, " unit="...), string(m.Unit))
	}
	if len(m.Source) > 0 {
		dst = rollup.AppendValue(append(dst, " source="...), string(m.Source))
	}
	dst = append(dst, " time="...)
	dst = m.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	return append(dst, '\n')
}

type recKind int

const (
	recFrame recKind = iota
	recHerokuLogs
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
}

func newInputReader(r io.Reader) *inputReader {
	return &inputReader{br: bufio.NewReaderSize(r, drain.MaxFrameBytes+32)}
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
		if line[0] == '<' {
			return record{kind: recFrame, data: line}, nil
		}
		if h, ok := parse.ParseHerokuLogsLine(line); ok {
			return record{kind: recHerokuLogs, header: h, data: line}, nil
		}
		return record{kind: recUnknown, data: line, reason: "unrecognized_line"}, nil
	}
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
