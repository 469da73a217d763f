package parse

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"strings"
	"unicode/utf8"
)

// RouteMode says whether, and how, router lines also become per-route
// series (README, "Per-route latency").
type RouteMode uint8

// The route modes.
const (
	RoutesOff       RouteMode = iota // no per-route series (the default)
	RoutesTemplates                  // a path that matches no template counts into route "other"
	RoutesAuto                       // templates first; other paths are normalized (ids become :id)
)

var routeModeNames = [...]string{RoutesOff: "off", RoutesTemplates: "templates", RoutesAuto: "auto"}

func (m RouteMode) String() string {
	if int(m) < len(routeModeNames) {
		return routeModeNames[m]
	}
	return "unknown"
}

// ParseRouteMode reads "off", "templates" or "auto" (any case; empty is off).
func ParseRouteMode(s string) (RouteMode, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off":
		return RoutesOff, nil
	case "templates":
		return RoutesTemplates, nil
	case "auto":
		return RoutesAuto, nil
	}
	return RoutesOff, fmt.Errorf("route metrics %q: off, templates or auto", s)
}

// The route rule's errors (CheckRoutes).
var (
	// ErrRoutesOff: templates are set while route metrics are off, so no
	// line uses them. A configuration that sets both is told; a drain in
	// the database may keep its templates while its route metrics are
	// turned off (drains set --route-metrics off).
	ErrRoutesOff = errors.New("route templates are set but route metrics are off")
	// ErrNoRouteTemplates: templates mode without templates would put
	// every request in route "other".
	ErrNoRouteTemplates = errors.New("route metrics templates needs --routes (or --route-metrics auto)")
)

// CheckRoutes is the rule between a route mode and its templates:
// templates mode needs templates (ErrNoRouteTemplates); templates with the
// mode off are used by no line (ErrRoutesOff).
func CheckRoutes(mode RouteMode, templates []string) error {
	switch {
	case mode == RoutesTemplates && len(templates) == 0:
		return ErrNoRouteTemplates
	case mode == RoutesOff && len(templates) > 0:
		return ErrRoutesOff
	}
	return nil
}

// ImpliedRouteMode is the route mode once templates are given without a
// mode: templates given alone turn route metrics that are off to
// templates (drains add|set --routes, parse --routes); any other mode is
// kept.
func ImpliedRouteMode(mode RouteMode, templates []string) RouteMode {
	if mode == RoutesOff && len(templates) > 0 {
		return RoutesTemplates
	}
	return mode
}

// Limits of per-route series.
const (
	MaxRouteTemplates     = 200  // templates per drain
	MaxRouteTemplateBytes = 200  // bytes per template
	MaxRouteBytes         = 255  // a route longer than this (METHOD SP path) counts into RouteOther
	maxRoutePathBytes     = 2048 // paths longer than this are not even looked at: RouteOther
	maxRouteSegments      = 32   // nor paths of more segments
)

// RouteOther is the route of requests that match no template (in
// templates mode), of paths that cannot be a route, and, in the rollup, of
// routes over a drain's cap.
const RouteOther = "other"

// RouteDim is the dimension (label) that carries a request's route.
const RouteDim = "route"

// CheckRouteTemplate reports what is wrong with a route template: it is a
// path of at most MaxRouteTemplateBytes printable ASCII bytes (no space,
// comma, quote, backslash, '?' or '#') that starts with '/'; a segment
// ":name" (letters, digits, '_') matches any one segment; "*", only as the
// last segment, matches one or more segments.
func CheckRouteTemplate(t string) error {
	switch {
	case t == "":
		return errors.New("an empty route template")
	case len(t) > MaxRouteTemplateBytes:
		return fmt.Errorf("route template %.40q…: longer than %d bytes", t, MaxRouteTemplateBytes)
	case t[0] != '/':
		return fmt.Errorf("route template %q: starts with /", t)
	}
	for i := 0; i < len(t); i++ {
		if c := t[i]; c <= ' ' || c >= 0x7f || strings.IndexByte(`,"\?#`, c) >= 0 {
			return fmt.Errorf("route template %q: %q is not allowed (printable ASCII but for space , \" \\ ? #)", t, c)
		}
	}
	segs := strings.Split(strings.Trim(t, "/"), "/")
	for i, s := range segs {
		switch {
		case s == "":
			// the root, or an empty segment ("//"): skipped, as in paths
		case s == "*":
			if i != len(segs)-1 {
				return fmt.Errorf("route template %q: * only as the last segment", t)
			}
		case strings.Contains(s, "*"):
			return fmt.Errorf("route template %q: * stands for whole segments (/api/*)", t)
		case s[0] == ':':
			if len(s) == 1 || strings.Trim(s[1:], "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != "" {
				return fmt.Errorf("route template %q: a parameter is :name (letters, digits, _)", t)
			}
		}
	}
	return nil
}

// ParseRoutes reads a comma-separated list of route templates (the ROUTES
// config var), checking each; spaces around templates are ignored.
func ParseRoutes(s string) ([]string, error) {
	var out []string
	for _, t := range strings.Split(s, ",") {
		if t = strings.TrimSpace(t); t == "" {
			continue
		}
		if err := CheckRouteTemplate(t); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	if len(out) > MaxRouteTemplates {
		return nil, fmt.Errorf("%d route templates: at most %d", len(out), MaxRouteTemplates)
	}
	return out, nil
}

// routeTable is a compiled list of templates. It lives in a Parser and is
// compiled again only when the list changes, into reused space: compiling
// allocates nothing once the space has grown.
type routeTable struct {
	src  []string // the templates compiled (a copy of Options.Routes)
	tpls []routeTpl
	segs []tplSeg
	text []byte // every template's canonical text, one after the other
	// byLen[n] lists, in order of precedence, the templates that can
	// match a path of n segments: cands[byLen[n]:byLen[n+1]].
	byLen [maxRouteSegments + 2]int
	cands []uint16
}

type routeTpl struct {
	seg0, seg1   int  // its segments in segs
	rest         bool // ends with "*": one or more further segments
	text0, text1 int  // its text in text ("/users/:id", "/api/*")
}

type tplSeg struct {
	lit   string // a literal segment (a substring of the template)
	param bool   // ":name": any one segment
}

func (rt *routeTable) compile(templates []string) {
	rt.src = append(rt.src[:0], templates...)
	rt.tpls, rt.segs, rt.text = rt.tpls[:0], rt.segs[:0], rt.text[:0]
	for _, t := range rt.src {
		if CheckRouteTemplate(t) != nil {
			continue // checked where the templates are configured
		}
		tp := routeTpl{seg0: len(rt.segs), text0: len(rt.text)}
		for s := range strings.SplitSeq(t, "/") {
			switch {
			case s == "":
			case s == "*":
				tp.rest = true
			default:
				rt.segs = append(rt.segs, tplSeg{lit: s, param: s[0] == ':'})
			}
			if s != "" {
				rt.text = append(append(rt.text, '/'), s...)
			}
		}
		if len(rt.text) == tp.text0 {
			rt.text = append(rt.text, '/')
		}
		tp.seg1, tp.text1 = len(rt.segs), len(rt.text)
		rt.tpls = append(rt.tpls, tp)
	}
	rt.cands = rt.cands[:0]
	for n := 0; n <= maxRouteSegments; n++ {
		rt.byLen[n] = len(rt.cands)
		for i, tp := range rt.tpls {
			if tn := tp.seg1 - tp.seg0; tn == n && !tp.rest || tp.rest && tn < n {
				rt.cands = append(rt.cands, uint16(i))
			}
		}
	}
	rt.byLen[maxRouteSegments+1] = len(rt.cands)
}

// same reports whether the table was compiled from templates.
func (rt *routeTable) same(templates []string) bool { return slices.Equal(rt.src, templates) }

// match returns the text of the first template that the path's segments
// match, or nil.
func (rt *routeTable) match(path []byte, segs []pathSeg) []byte {
	n := len(segs)
	for _, c := range rt.cands[rt.byLen[n]:rt.byLen[n+1]] {
		tp := &rt.tpls[c]
		ts := rt.segs[tp.seg0:tp.seg1]
		j := 0
		for ; j < len(ts); j++ {
			if !ts[j].param && string(path[segs[j].start:segs[j].end]) != ts[j].lit {
				break
			}
		}
		if j == len(ts) {
			return rt.text[tp.text0:tp.text1]
		}
	}
	return nil
}

// pathSeg is one non-empty segment of a path.
type pathSeg struct{ start, end int }

// appendRoute appends the route of a router line to dst: METHOD SP and the
// template the path matches, or (auto) the normalized path, or RouteOther.
// The path is the path= value as written (quoted: with its escapes).
func (p *Parser) appendRoute(dst, method, path []byte, quoted bool) []byte {
	if !validMethod(method) {
		return append(dst, RouteOther...)
	}
	if quoted {
		p.pathBuf = unquote(p.pathBuf[:0], path)
		path = p.pathBuf
	}
	if len(path) > 0 && path[0] != '/' {
		return append(dst, RouteOther...)
	}
	// One pass: the segments, up to the query string (or a fragment).
	segs := p.pathSegs[:0]
	end := len(path)
	for i := 0; i < end; {
		for i < end && path[i] == '/' {
			i++
		}
		j := segmentEnd(path[:end], i)
		if j < end && path[j] != '/' { // '?' or '#'
			end = j
		}
		if j > i {
			if len(segs) == maxRouteSegments || j > maxRoutePathBytes {
				p.pathSegs = segs
				return append(dst, RouteOther...)
			}
			segs = append(segs, pathSeg{i, j})
		}
		i = j
	}
	path = path[:end]
	p.pathSegs = segs
	start := len(dst)
	dst = append(append(dst, method...), ' ')
	if t := p.routes.match(path, segs); t != nil {
		return append(dst, t...)
	}
	if p.opts.RouteMetrics != RoutesAuto {
		return append(dst[:start], RouteOther...)
	}
	if len(segs) == 0 {
		return append(dst, '/')
	}
	for _, s := range segs {
		dst = append(dst, '/')
		if seg := path[s.start:s.end]; isIDSegment(seg) {
			dst = append(dst, ":id"...)
		} else if printable(seg) {
			dst = append(dst, seg...)
		} else { // a label value must be UTF-8 (remote write refuses the request otherwise)
			return append(dst[:start], RouteOther...)
		}
		if len(dst)-start > MaxRouteBytes {
			return append(dst[:start], RouteOther...)
		}
	}
	return dst
}

// printable reports whether b is valid UTF-8 without control characters.
func printable(b []byte) bool {
	for _, c := range b {
		if c < ' ' || c == 0x7f {
			return false
		}
	}
	return utf8.Valid(b)
}

// validMethod reports whether m looks like an HTTP method: 1 to 16
// upper-case letters.
func validMethod(m []byte) bool {
	if len(m) == 0 || len(m) > 16 {
		return false
	}
	for _, c := range m {
		if c < 'A' || c > 'Z' {
			return false
		}
	}
	return true
}

// isIDSegment reports whether a path segment is an id that automatic
// normalization replaces by ":id": all digits; a UUID; a hex string of at
// least 16 characters; or a token of at least 24 characters of
// [A-Za-z0-9_-] with a digit in it.
func isIDSegment(s []byte) bool {
	// One table lookup a byte, no branch: the classes every byte has, and
	// those some byte has.
	all, some := ^segClass(0), segClass(0)
	for _, c := range s {
		k := segClasses[c]
		all &= k
		some |= k
	}
	switch {
	case all&classToken == 0: // a byte that is in no id
		return false
	case all&classDigit != 0:
		return true
	case all&classHex != 0 && len(s) >= 16:
		return true
	case len(s) == 36 && isUUID(s):
		return true
	}
	return some&classDigit != 0 && len(s) >= 24
}

type segClass uint8

const (
	classDigit segClass = 1 << iota // 0-9
	classHex                        // 0-9, a-f, A-F
	classToken                      // A-Z, a-z, 0-9, '_', '-'
)

var segClasses = func() (t [256]segClass) {
	for c := 0; c < 256; c++ {
		switch {
		case '0' <= c && c <= '9':
			t[c] = classDigit | classHex | classToken
		case 'a' <= c && c <= 'f', 'A' <= c && c <= 'F':
			t[c] = classHex | classToken
		case 'g' <= c && c <= 'z', 'G' <= c && c <= 'Z', c == '_', c == '-':
			t[c] = classToken
		}
	}
	return t
}()

// segmentEnd returns the index of the first '/', '?' or '#' of b at or
// after i, or len(b); 8 bytes at a time (see swarLo).
func segmentEnd(b []byte, i int) int {
	for ; i+8 <= len(b); i += 8 {
		x := binary.LittleEndian.Uint64(b[i:])
		slash, query, hash := x^('/'*swarLo), x^('?'*swarLo), x^('#'*swarLo)
		if m := ((slash-swarLo)&^slash | (query-swarLo)&^query | (hash-swarLo)&^hash) & swarHi; m != 0 {
			return i + bits.TrailingZeros64(m)>>3
		}
	}
	for i < len(b) && !pathStop[b[i]] {
		i++
	}
	return i
}

// pathStop marks the bytes that end a path segment: '/', and '?' and '#'
// (the query string or fragment, which are not part of the route).
var pathStop = [256]bool{'/': true, '?': true, '#': true}

// isUUID reports whether s is 8-4-4-4-12 hex digits.
func isUUID(s []byte) bool {
	if len(s) != 36 || s[8] != '-' || s[13] != '-' || s[18] != '-' || s[23] != '-' {
		return false
	}
	for i, c := range s {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			continue
		}
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}
