package parse

import (
	"bytes"
	"strconv"
	"time"
	"unsafe"
)

// Options are a drain's naming options.
type Options struct {
	Prefix       string // metric names become "<Prefix>.<name>"
	SourcePrefix string // sources become "<SourcePrefix>.<source>", or "<SourcePrefix>" without one
	ProcessTypes bool   // fill Measurement.TypeSource for per-process-type series
	// RouteMetrics turns on per-route series of router lines, matched
	// against Routes (templates such as "/users/:id", in order of
	// precedence; see CheckRouteTemplate).
	RouteMetrics RouteMode
	Routes       []string
	// App, when set, is the sending app of a drain that several apps send
	// to (the built-in drain): every series gets the dimension AppDim, so
	// that each app's series are its own.
	App string
}

// Parser parses frames into measurements. It keeps scratch space between
// calls, so one Parser serves one goroutine; the zero value is ready to use
// with zero Options.
type Parser struct {
	// Rejects counts what was rejected, by reason, since the last Reset.
	Rejects Rejects
	// Dropped and Lost add up the messages that logplex (L10) or log-shuttle
	// (L12, L13, its headers) reported dropped or lost, since the last Reset.
	Dropped, Lost uint64
	// ShuttleDropped and ShuttleLost are the part of Dropped and Lost that
	// log-shuttle's L12 and L13 lines reported.
	ShuttleDropped, ShuttleLost uint64
	// BadTimestamps counts the frames whose timestamp could not be read
	// (neither RFC 3339 nor "-"), since the last Reset: their measurements
	// are stamped with the receive time.
	BadTimestamps uint64
	// OnReject, when set, is called with each reject's reason and the text
	// it concerns (the pair, or the frame for BadHeader). The text is valid
	// only during the call.
	OnReject func(r Reason, text []byte)

	opts      Options
	prefixLen int // what the prefix adds to a name: len(Prefix)+1, or 0
	sc        pairs
	pending   []pendingPair
	src       []byte // the line's source, prefixed
	typeSrc   []byte // its process type, prefixed
	srcRaw    []byte // an unquoted source= value
	name      []byte
	member    []byte
	m         Measurement

	tc        timeCache
	routes    routeTable // opts.Routes, compiled
	pathBuf   []byte     // an unquoted path= value
	pathSegs  []pathSeg
	dims      []byte // the line's route, as its dimensions
	noSrc     []byte // the source of series without one: the source prefix, or empty
	auxSrc    []byte // another source (a process type's formation)
	appDims   []byte // the dimension AppDim of Options.App, or empty
	addonName []byte // an add-on line's metric name (addons.go)
}

// lineKeys are the values of a line's pairs that are not metric keys: the
// source, l2met v1's, and the router's.
type lineKeys struct {
	source, dyno                        []byte
	haveSource                          bool
	v1Name, v1Val, v1Units              []byte
	haveV1Name, haveV1Val               bool
	connect, service, nbytes, status    []byte
	haveConnect, haveService, haveBytes bool
	at, code                            []byte
	method, path                        []byte
	havePath, pathQuoted                bool
}

type pendingPair struct {
	kind   Kind
	name   []byte
	val    []byte
	raw    []byte // the pair as written
	quoted bool
}

func (p *Parser) reject(r Reason, text []byte) {
	p.Rejects[r]++
	if p.OnReject != nil {
		p.OnReject(r, text)
	}
}

// NewParser returns a parser with the given options.
func NewParser(opts Options) *Parser {
	p := &Parser{}
	p.Reset(opts)
	return p
}

// ScratchBytes returns the bytes of scratch space the parser holds: it grows
// with the longest line it has parsed (a pair costs about 90 bytes while its
// line is parsed).
func (p *Parser) ScratchBytes() int {
	return cap(p.pending)*int(unsafe.Sizeof(pendingPair{})) +
		cap(p.src) + cap(p.typeSrc) + cap(p.srcRaw) + cap(p.name) + cap(p.member)
}

// Reset changes the options and clears the counts, keeping the scratch
// space. Route templates are compiled again only when they changed.
func (p *Parser) Reset(opts Options) {
	p.opts = opts
	p.prefixLen = 0
	if opts.Prefix != "" {
		p.prefixLen = len(opts.Prefix) + 1
	}
	p.Rejects = Rejects{}
	p.Dropped, p.Lost, p.ShuttleDropped, p.ShuttleLost = 0, 0, 0, 0
	p.BadTimestamps = 0
	if !p.routes.same(opts.Routes) {
		p.routes.compile(opts.Routes)
	}
	p.noSrc = p.prefixSource(p.noSrc[:0], nil)
	p.appDims = p.appDims[:0]
	if opts.App != "" {
		p.appDims = AppendDim(p.appDims, AppDim, opts.App)
	}
}

// Frame parses one syslog frame (without its octet count) received at recv
// and calls emit once per measurement. It reports false, and counts
// BadHeader, when the frame has no readable syslog header.
func (p *Parser) Frame(frame []byte, recv time.Time, emit func(*Measurement)) bool {
	h, ok := parseHeader(frame, &p.tc)
	if !ok {
		p.reject(BadHeader, frame)
		return false
	}
	p.Message(h, recv, emit)
	return true
}

// Message parses the message of a frame whose header is h.
func (p *Parser) Message(h Header, recv time.Time, emit func(*Measurement)) {
	t := h.Time
	if t.IsZero() {
		t = recv
		if h.BadTime {
			p.BadTimestamps++
		}
	}
	heroku := string(h.App) == "heroku" // constant comparisons: inlined, no call
	router := heroku && string(h.ProcID) == "router"

	var kv lineKeys // in memory, not registers: the loop does not shuffle it around each call
	p.pending = p.pending[:0]
	p.sc.reset(h.Msg)
	for {
		k, v, more := p.sc.next()
		if !more {
			break
		}
		// A key of the router's, or source, measure, val or units, is never
		// a metric key (those have '#' or '.' after the kind): the order of
		// the checks does not matter, and the router's keys go first.
		if router { // most of a router line's keys are the router's
			switch string(k) {
			case "dyno":
				if kv.dyno == nil {
					kv.dyno = v
				}
				continue
			case "connect":
				kv.haveConnect, kv.connect = true, v
				continue
			case "service":
				kv.haveService, kv.service = true, v
				continue
			case "bytes":
				kv.haveBytes, kv.nbytes = true, v
				continue
			case "status":
				kv.status = v
				continue
			case "at":
				kv.at = v
				continue
			case "code":
				kv.code = v
				continue
			case "method":
				if kv.method == nil {
					kv.method = v
				}
				continue
			case "path":
				if !kv.havePath {
					kv.havePath, kv.path, kv.pathQuoted = true, v, p.sc.quoted
				}
				continue
			}
		}
		if maybeMetricKey(k) {
			if kind, name, ok := metricKey(k); ok {
				p.pending = append(p.pending, pendingPair{kind: kind, name: name, val: v, raw: p.sc.raw(), quoted: p.sc.quoted})
				continue
			}
		}
		switch string(k) {
		case "source":
			if !kv.haveSource && len(v) > 0 {
				kv.haveSource = true
				if p.sc.quoted {
					p.srcRaw = unquote(p.srcRaw[:0], v)
					v = p.srcRaw
				}
				kv.source = v
			}
		case "measure":
			if !kv.haveV1Name {
				kv.haveV1Name, kv.v1Name = true, v
			}
		case "val":
			if !kv.haveV1Val {
				kv.haveV1Val, kv.v1Val = true, v
			}
		case "units":
			if kv.v1Units == nil {
				kv.v1Units = v
			}
		}
	}
	if p.sc.unterminated {
		p.reject(UnterminatedQuote, p.sc.b[p.sc.start:])
	}

	// The source, in the order the package doc gives.
	var raw []byte
	switch {
	case kv.haveSource:
		raw = legacyRuntimeSource(kv.source)
	case router:
		raw = kv.dyno
	case IsDynoName(h.ProcID):
		raw = h.ProcID
	}
	p.src = p.prefixSource(p.src[:0], raw)
	p.typeSrc = p.typeSrc[:0]
	hasType := false
	if p.opts.ProcessTypes {
		if typ := processType(raw); typ != nil {
			p.typeSrc = p.prefixSource(p.typeSrc, typ)
			hasType = true
		}
	}

	for i := range p.pending {
		pp := &p.pending[i]
		if len(pp.name) == 0 {
			p.reject(EmptyName, pp.raw)
			continue
		}
		if pp.kind == Unique {
			member := pp.val
			if pp.quoted {
				p.member = unquote(p.member[:0], member)
				member = p.member
			}
			switch {
			case len(member) == 0:
				p.reject(EmptyMember, pp.raw)
			case len(member) > MaxMemberBytes:
				p.reject(LongMember, pp.raw)
			default:
				p.emit(emit, Unique, pp.name, 1, nil, member, t, hasType)
			}
			continue
		}
		val, unit, ok := ParseValue(pp.val)
		if !ok {
			p.reject(BadValue, pp.raw)
			continue
		}
		name := pp.name
		if ns := addonNamespace(&h); ns != nil {
			name, val, unit = p.addonMetric(ns, name, val, unit)
		}
		p.emit(emit, pp.kind, name, val, unit, nil, t, hasType)
	}

	// l2met v1: measure=NAME val=V [units=U]. On Heroku's own lines this is
	// the legacy log-runtime-metrics format, whose values are samples.
	if v1Name, v1Val := kv.v1Name, kv.v1Val; kv.haveV1Name && (len(v1Name) > 0 || kv.haveV1Val) {
		kind := Measure
		if heroku {
			kind = Sample
		}
		switch {
		case len(v1Name) == 0:
			p.reject(EmptyName, h.Msg)
		case len(v1Val) == 0:
			p.reject(BadValue, h.Msg)
		default:
			if val, unit, ok := ParseValue(v1Val); !ok {
				p.reject(BadValue, v1Val)
			} else {
				if len(kv.v1Units) > 0 {
					unit = kv.v1Units
				}
				p.emit(emit, kind, v1Name, val, unit, nil, t, hasType)
			}
		}
	}

	switch {
	case router:
		svc, svcUnit, svcOK := p.routerLine(emit, t, hasType, &kv)
		if p.opts.RouteMetrics != RoutesOff && kv.method != nil && kv.havePath {
			p.routeSeries(emit, t, kv.method, kv.path, kv.pathQuoted, svcOK, svc, svcUnit, kv.status)
		}
	case string(h.App) == "app" && string(h.ProcID) == "api":
		p.apiLine(emit, h.Msg, t)
	case heroku && IsDynoName(h.ProcID):
		p.dynoLine(emit, h.Msg, t, hasType)
	case heroku && string(h.ProcID) == "logplex":
		if bytes.HasPrefix(h.Msg, []byte("Error L10 ")) {
			if n, ok := messagesCount(h.Msg); ok {
				p.Dropped += uint64(n)
				p.emit(emit, Count, nameLogplexDropped, n, nil, nil, t, false)
			}
		}
	case string(h.ProcID) == "log-shuttle":
		switch {
		case bytes.HasPrefix(h.Msg, []byte("Error L12:")):
			if n, ok := messagesCount(h.Msg); ok {
				p.Dropped += uint64(n)
				p.ShuttleDropped += uint64(n)
				p.emit(emit, Count, nameLogplexDropped, n, nil, nil, t, false)
			}
		case bytes.HasPrefix(h.Msg, []byte("Error L13:")):
			if n, ok := messagesCount(h.Msg); ok {
				p.Lost += uint64(n)
				p.ShuttleLost += uint64(n)
				p.emit(emit, Count, nameLogplexLost, n, nil, nil, t, false)
			}
		}
	}
}

var (
	unitMS    = []byte("ms")
	unitBytes = []byte("bytes")

	nameRouterConnect  = []byte("router.connect")
	nameRouterService  = []byte("router.service")
	nameRouterBytes    = []byte("router.bytes")
	nameRouterRequests = []byte("router.requests")
	nameRouterStatus   = [5][]byte{[]byte("router.status.1xx"), []byte("router.status.2xx"), []byte("router.status.3xx"),
		[]byte("router.status.4xx"), []byte("router.status.5xx")} // by statusClass's class
	nameDynoCrashes    = []byte("dyno.crashes")
	nameDynoRestarts   = []byte("dyno.restarts")
	nameLogplexDropped = []byte("logplex.dropped")
	nameLogplexLost    = []byte("logplex.lost")
)

// routerLine emits the router's series; it returns the service time, for
// the route series.
func (p *Parser) routerLine(emit func(*Measurement), t time.Time, hasType bool, kv *lineKeys) (svc float64, svcUnit []byte, svcOK bool) {
	status, at, code := kv.status, kv.at, kv.code
	p.routerMeasure(emit, t, hasType, kv.haveConnect, nameRouterConnect, kv.connect, unitMS)
	svc, svcUnit, svcOK = p.routerMeasure(emit, t, hasType, kv.haveService, nameRouterService, kv.service, unitMS)
	p.routerMeasure(emit, t, hasType, kv.haveBytes, nameRouterBytes, kv.nbytes, unitBytes)
	p.emit(emit, Count, nameRouterRequests, 1, nil, nil, t, hasType)
	if statusClass(status) {
		p.emit(emit, Count, nameRouterStatus[status[0]-'1'], 1, nil, nil, t, hasType)
	}
	if len(code) > 0 && (string(at) == "error" || string(at) == "warning") {
		name := append(append(p.member[:0], "router.errors."...), code...)
		p.member = name
		p.emit(emit, Count, name, 1, nil, nil, t, hasType)
	}
	return svc, svcUnit, svcOK
}

// routerMeasure emits router.connect/service/bytes; empty values are skipped
// and a missing unit defaults to def (H25 lines print "connect=0 service=1").
func (p *Parser) routerMeasure(emit func(*Measurement), t time.Time, hasType, present bool, name, v, def []byte) (float64, []byte, bool) {
	if !present || len(v) == 0 {
		return 0, nil, false
	}
	val, unit, ok := ParseValue(v)
	if !ok {
		p.reject(BadValue, v)
		return 0, nil, false
	}
	if len(unit) == 0 {
		unit = def
	}
	p.emit(emit, Measure, name, val, unit, nil, t, hasType)
	return val, unit, true
}

// routeSeries emits a router line's per-route series: measure
// router.service and counts router.requests and router.status.Nxx, with
// the route as a dimension and no source (app-wide: every dyno's requests
// of a route are one series). The service time is routerLine's reading.
func (p *Parser) routeSeries(emit func(*Measurement), t time.Time, method, path []byte, quoted, svcOK bool, svc float64, svcUnit, status []byte) {
	p.dims = append(p.dims[:0], p.appDims...)
	if len(p.dims) > 0 {
		p.dims = append(p.dims, DimSep)
	}
	p.dims = p.appendRoute(append(append(p.dims, RouteDim...), DimPairSep), method, path, quoted)
	if svcOK {
		p.emitWith(emit, Measure, nameRouterService, svc, svcUnit, nil, t, p.noSrc, p.dims)
	}
	p.emitWith(emit, Count, nameRouterRequests, 1, nil, nil, t, p.noSrc, p.dims)
	if statusClass(status) {
		p.emitWith(emit, Count, nameRouterStatus[status[0]-'1'], 1, nil, nil, t, p.noSrc, p.dims)
	}
}

// statusClass reports whether status= is a 3-digit status of class 1 to 5.
func statusClass(status []byte) bool {
	return len(status) == 3 && '1' <= status[0] && status[0] <= '5' && isDigit(status[1]) && isDigit(status[2])
}

// dynoLine handles the dyno manager's lines: R-code errors, crashes and
// restarts.
func (p *Parser) dynoLine(emit func(*Measurement), msg []byte, t time.Time, hasType bool) {
	if bytes.HasPrefix(msg, []byte("Error R")) {
		i := len("Error R")
		j := i
		for j < len(msg) && isDigit(msg[j]) {
			j++
		}
		if j > i && (j == len(msg) || msg[j] == ' ') {
			name := append(append(p.member[:0], "dyno.errors.R"...), msg[i:j]...)
			p.member = name
			p.emit(emit, Count, name, 1, nil, nil, t, hasType)
		}
		return
	}
	if rest, ok := bytes.CutPrefix(msg, []byte("State changed from ")); ok {
		switch {
		case bytes.HasSuffix(rest, []byte(" to crashed")):
			p.emit(emit, Count, nameDynoCrashes, 1, nil, nil, t, hasType)
		case bytes.Equal(rest, []byte("up to starting")) || bytes.Equal(rest, []byte("crashed to starting")):
			// A running or crashed dyno starting again: heroku restart,
			// the daily cycling, a crash's automatic restart. A new dyno
			// (from down) is no restart.
			p.emit(emit, Count, nameDynoRestarts, 1, nil, nil, t, hasType)
		}
	}
}

// messagesCount finds N in "… N messages …" (logplex L10, log-shuttle L12/L13,
// old and new wordings).
func messagesCount(msg []byte) (float64, bool) {
	i := bytes.Index(msg, []byte(" messages"))
	if i <= 0 {
		return 0, false
	}
	j := i
	for j > 0 && isDigit(msg[j-1]) {
		j--
	}
	if j == i || (j > 0 && msg[j-1] != ' ') {
		return 0, false
	}
	n, err := strconv.ParseUint(string(msg[j:i]), 10, 53)
	if err != nil {
		return 0, false
	}
	return float64(n), true
}

func (p *Parser) emit(emit func(*Measurement), kind Kind, name []byte, v float64, unit, member []byte, t time.Time, hasType bool) {
	if p.tooLong(name, p.src, unit) {
		return
	}
	m := p.measurement(kind, name, v, unit, member, t, p.src, nil)
	if hasType && kind != Sample { // a sample has no meaning across dynos; HLL sketches merge
		m.TypeSource = p.typeSrc
	}
	emit(m)
}

// emitWith emits a measurement with the given source (prefixed already)
// and dimensions, and no process-type rollup.
func (p *Parser) emitWith(emit func(*Measurement), kind Kind, name []byte, v float64, unit, member []byte, t time.Time, src, dims []byte) {
	if p.tooLong(name, src, unit) {
		return
	}
	emit(p.measurement(kind, name, v, unit, member, t, src, dims))
}

// tooLong rejects (LongName) a measurement whose name (with the drain's
// prefix), source or unit is longer than MaxNameBytes.
func (p *Parser) tooLong(name, src, unit []byte) bool {
	return (len(name)+p.prefixLen > MaxNameBytes || len(src) > MaxNameBytes || len(unit) > MaxNameBytes) && p.rejectLongName(name)
}

// rejectLongName is tooLong's rare case, kept out of line so that tooLong
// is inlined.
//
//go:noinline
func (p *Parser) rejectLongName(name []byte) bool {
	p.reject(LongName, name)
	return true
}

func (p *Parser) measurement(kind Kind, name []byte, v float64, unit, member []byte, t time.Time, src, dims []byte) *Measurement {
	if p.opts.Prefix != "" {
		p.name = append(append(append(p.name[:0], p.opts.Prefix...), '.'), name...)
		name = p.name
	}
	if dims == nil && len(p.appDims) > 0 {
		dims = p.appDims
	}
	m := &p.m
	m.Kind, m.Name, m.Value, m.Unit, m.Member, m.Time = kind, name, v, unit, member, t
	m.Source, m.TypeSource, m.Dims = src, nil, dims
	return m
}

func (p *Parser) prefixSource(dst, src []byte) []byte {
	if p.opts.SourcePrefix == "" {
		return append(dst, src...)
	}
	dst = append(dst, p.opts.SourcePrefix...)
	if len(src) > 0 {
		dst = append(append(dst, '.'), src...)
	}
	return dst
}

// RefusedName is the series name that a refused pair's key would have
// given under the parser's options (the drain's prefix applied), for the
// status pages: "" for a pair without a name (count#=1). ok is false when
// the key names no metric at all.
func (p *Parser) RefusedName(key []byte) (name string, ok bool) {
	_, n, ok := metricKey(key)
	if !ok {
		switch string(key) {
		case "connect", "service", "bytes": // a router line's
			n = append([]byte("router."), key...)
		default:
			return "", false
		}
	}
	if len(n) == 0 || p.opts.Prefix == "" {
		return string(n), true
	}
	return p.opts.Prefix + "." + string(n), true
}

// metricKey splits a key into its kind and name.
func metricKey(k []byte) (Kind, []byte, bool) {
	if !maybeMetricKey(k) {
		return 0, nil, false
	}
	switch {
	case len(k) >= 8 && string(k[:8]) == "measure#", len(k) >= 8 && string(k[:8]) == "measure.":
		return Measure, k[8:], true
	case len(k) >= 6 && string(k[:6]) == "count#":
		return Count, k[6:], true
	case len(k) >= 7 && string(k[:7]) == "sample#":
		return Sample, k[7:], true
	case len(k) >= 7 && string(k[:7]) == "unique#":
		return Unique, k[7:], true
	}
	return 0, nil, false
}

// maybeMetricKey is metricKey's first test, cheap enough to be inlined:
// most keys fail it.
func maybeMetricKey(k []byte) bool { return len(k) >= 6 && metricKeyStart[k[0]] }

var metricKeyStart = [256]bool{'m': true, 'c': true, 's': true, 'u': true}

// IsDynoName reports whether b looks like a dyno name: a process type, a dot
// and a number ("web.1", "run.1234", "scheduler.9200").
func IsDynoName(b []byte) bool { return dynoDot(b) > 0 }

// dynoDot returns the index of the dot of dyno name b, or -1.
func dynoDot(b []byte) int {
	dot := bytes.LastIndexByte(b, '.')
	if dot <= 0 || dot == len(b)-1 || !isLetter(b[0]) {
		return -1
	}
	for _, c := range b[1:dot] {
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return -1
		}
	}
	for _, c := range b[dot+1:] {
		if !isDigit(c) {
			return -1
		}
	}
	return dot
}

func isLetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// processType returns "web" for "web.1", or nil when src is not a dyno name.
func processType(src []byte) []byte {
	dot := dynoDot(src)
	if dot < 0 {
		return nil
	}
	return src[:dot]
}

// legacyRuntimeSource turns Heroku's legacy heroku.<appid>.<dyno>.<uuid> into
// <dyno>, so that a restarted dyno keeps its series. Anything else is
// returned unchanged.
func legacyRuntimeSource(src []byte) []byte {
	rest, ok := bytes.CutPrefix(src, appHerokuDot)
	if !ok {
		return src
	}
	dot := bytes.IndexByte(rest, '.')
	if dot <= 0 {
		return src
	}
	for _, c := range rest[:dot] {
		if !isDigit(c) {
			return src
		}
	}
	rest = rest[dot+1:]
	last := bytes.LastIndexByte(rest, '.')
	if last <= 0 || !IsDynoName(rest[:last]) {
		return src
	}
	return rest[:last]
}

var appHerokuDot = []byte("heroku.")

// ParseHerokuLogsLine reads one line of `heroku logs` output,
// "2024-05-01T12:34:01.000001+00:00 app[web.1]: MSG", as a header.
func ParseHerokuLogsLine(line []byte) (Header, bool) {
	var h Header
	line = trimLF(line)
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return h, false
	}
	t, ok := ParseTime(line[:sp])
	if !ok {
		return h, false
	}
	rest := line[sp+1:]
	open := bytes.IndexByte(rest, '[')
	end := bytes.Index(rest, []byte("]:"))
	if open <= 0 || end <= open+1 || bytes.IndexByte(rest[:open], ' ') >= 0 {
		return h, false
	}
	h.Time = t
	h.App = rest[:open]
	h.ProcID = rest[open+1 : end]
	msg := rest[end+2:]
	if len(msg) > 0 && msg[0] == ' ' {
		msg = msg[1:]
	}
	h.Msg = msg
	return h, true
}
