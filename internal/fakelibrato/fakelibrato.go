// Package fakelibrato is a Librato metrics API for tests: a real HTTP server
// that validates requests the way Librato's legacy metrics API did (POST
// /v1/metrics, gauges and counters, its limits and error bodies), stores what
// it accepts, records every request, and can be told to fail.
//
// It also takes annotations, POST /v1/annotations/NAME, as Librato's API
// documented them: a JSON or
// form body with title (required), and optional source, description,
// start_time and end_time (unix seconds), links; NAME and source in the
// metric-name alphabet; answered 201 Created with the event and a Location.
// The length limit on titles (255) is an assumption (UNCONFIRMED).
package fakelibrato

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Measurement is one stored legacy measurement.
type Measurement struct {
	User        string
	Type        string // "gauge" or "counter"
	Name        string
	Source      string
	MeasureTime int64
	Value       *float64
	Count       *int64
	Sum         *float64
	Min         *float64
	Max         *float64
	SumSquares  *float64
	Period      *int
	Attributes  map[string]any
}

// Annotation is one stored annotation event.
type Annotation struct {
	User        string
	Stream      string // the annotation stream: NAME of the path
	ID          int64
	Title       string
	Source      string
	Description string
	StartTime   int64
	EndTime     int64 // 0: none
}

// Request is one recorded request.
type Request struct {
	Method          string
	Path            string
	User            string
	UserAgent       string
	ContentType     string
	ContentEncoding string
	Body            []byte
	Status          int
	At              time.Time
}

// Fault is an injected failure.
type Fault struct {
	Status     int           // the status to answer (0: answer normally after Delay)
	Body       string        // the body to answer with
	RetryAfter string        // a Retry-After header, if not empty
	Delay      time.Duration // sleep this long before answering
}

// Faults as Librato produced them.
var (
	RateLimit403 = Fault{Status: 403, Body: `{"request_time":%d,"error":"You have hit the API limit for measurements [measure:raw_rate]. Contact: support@librato.com to adjust this limit."}`}
	RateLimit429 = Fault{Status: 429, Body: `{"request_time":%d,"error":"You have hit the API limit for measurements [measure:raw_rate]. Contact: support@librato.com to adjust this limit."}`}
	Maintenance  = Fault{Status: 503, Body: `{"errors":{"system":["The API is currently down for maintenance. It'll be back shortly."]}}`}
	Empty500     = Fault{Status: 500}
)

// Server is the fake. Create it with New and serve it with httptest.
type Server struct {
	// MaxAge and MaxSkew bound measure_time around Now (L7, L8).
	MaxAge, MaxSkew time.Duration
	Now             func() time.Time

	mu         sync.Mutex
	users      map[string]string // user → token
	requests   []Request
	stored     []Measurement
	events     []Annotation
	types      map[string]string // user + lower-case name → type
	rejectName map[string]bool   // lower-case names answered with 400
	faultN     int
	fault      Fault
	faultUntil time.Time
}

// New returns a fake that knows the given user→token pairs.
func New(users map[string]string) *Server {
	s := &Server{MaxAge: time.Hour, MaxSkew: 10 * time.Minute, Now: time.Now,
		users: map[string]string{}, types: map[string]string{}, rejectName: map[string]bool{}}
	for u, t := range users {
		s.users[u] = t
	}
	return s
}

// AddUser adds a user with its token.
func (s *Server) AddUser(user, token string) {
	s.mu.Lock()
	s.users[user] = token
	s.mu.Unlock()
}

// RemoveUser revokes a user: its requests get 401 from now on.
func (s *Server) RemoveUser(user string) {
	s.mu.Lock()
	delete(s.users, user)
	s.mu.Unlock()
}

// FailNext answers the next n requests with f.
func (s *Server) FailNext(n int, f Fault) {
	s.mu.Lock()
	s.faultN, s.fault, s.faultUntil = n, f, time.Time{}
	s.mu.Unlock()
}

// FailUntil answers every request with f until t.
func (s *Server) FailUntil(t time.Time, f Fault) {
	s.mu.Lock()
	s.faultN, s.fault, s.faultUntil = 0, f, t
	s.mu.Unlock()
}

// RejectName makes any request that carries the metric name fail with 400,
// as Librato did for a name it would not take.
func (s *Server) RejectName(name string) {
	s.mu.Lock()
	s.rejectName[strings.ToLower(name)] = true
	s.mu.Unlock()
}

// Requests returns every request received.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Measurements returns every accepted measurement, in order.
func (s *Server) Measurements() []Measurement {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Measurement(nil), s.stored...)
}

// Annotations returns every accepted annotation event, in order.
func (s *Server) Annotations() []Annotation {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Annotation(nil), s.events...)
}

// Duplicates returns the measurements stored more than once for the same
// user, lower-case name, source and measure_time (every copy after the first).
func (s *Server) Duplicates() []Measurement {
	s.mu.Lock()
	defer s.mu.Unlock()
	seen := map[string]bool{}
	var dups []Measurement
	for _, m := range s.stored {
		k := fmt.Sprintf("%s\x00%s\x00%s\x00%d", m.User, strings.ToLower(m.Name), strings.ToLower(m.Source), m.MeasureTime)
		if seen[k] {
			dups = append(dups, m)
		}
		seen[k] = true
	}
	return dups
}

var validName = regexp.MustCompile(`^[A-Za-z0-9.:_-]{1,255}$`)

func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(io.LimitReader(r.Body, 64<<20))
	user, pass, hasAuth := r.BasicAuth()
	rec := Request{Method: r.Method, Path: r.URL.Path, User: user, UserAgent: r.UserAgent(),
		ContentType: r.Header.Get("Content-Type"), ContentEncoding: r.Header.Get("Content-Encoding"), Body: body, At: s.Now()}

	s.mu.Lock()
	var fault *Fault
	if s.faultN > 0 {
		s.faultN--
		f := s.fault
		fault = &f
	} else if s.Now().Before(s.faultUntil) {
		f := s.fault
		fault = &f
	}
	s.mu.Unlock()

	status, resp := http.StatusOK, ""
	defer func() {
		rec.Status = status
		s.mu.Lock()
		s.requests = append(s.requests, rec)
		s.mu.Unlock()
	}()
	w.Header().Set("X-Librato-RateLimit-Agg", "limit=300,remaining=299,reset=60")
	w.Header().Set("X-Librato-RateLimit-Std", "limit=18000,remaining=17999,reset=60")
	if fault != nil {
		if fault.Delay > 0 {
			select {
			case <-time.After(fault.Delay):
			case <-r.Context().Done():
				status = 499
				return
			}
		}
		if fault.Status != 0 {
			if fault.RetryAfter != "" {
				w.Header().Set("Retry-After", fault.RetryAfter)
			}
			status, resp = fault.Status, fault.Body
			if strings.Contains(resp, "%d") {
				resp = fmt.Sprintf(resp, s.Now().Unix())
			}
			write(w, status, resp)
			return
		}
	}

	s.mu.Lock()
	token, known := s.users[user]
	s.mu.Unlock()
	stream, isAnnotation := strings.CutPrefix(r.URL.Path, "/v1/annotations/")
	switch {
	case r.Method != http.MethodPost || (r.URL.Path != "/v1/metrics" && r.URL.Path != "/v1/measurements" && !isAnnotation):
		status, resp = http.StatusNotFound, `{"errors":{"request":["not found"]}}`
	case !hasAuth || !known || token != pass:
		status, resp = http.StatusUnauthorized, `{"errors":{"request":["Please provide credentials for authentication."]}}`
	case isAnnotation:
		var loc string
		status, resp, loc = s.annotation(user, stream, r.Header.Get("Content-Type"), body)
		if loc != "" {
			w.Header().Set("Location", loc)
		}
	case r.URL.Path == "/v1/metrics":
		status, resp = s.legacy(user, r.Header.Get("Content-Type"), body)
	default:
		status, resp = s.tagged(r.Header.Get("Content-Type"), body)
	}
	write(w, status, resp)
}

// annotation validates and stores a POST /v1/annotations/NAME; it answers
// 201 with the event and its Location.
func (s *Server) annotation(user, stream, contentType string, body []byte) (int, string, string) {
	if !validName.MatchString(stream) {
		return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{"name":["%s is not a valid annotation stream name"]}}}`, stream), ""
	}
	fields := map[string]any{}
	switch mt, _, _ := mime.ParseMediaType(contentType); mt {
	case "application/json":
		dec := json.NewDecoder(bytes.NewReader(body))
		dec.UseNumber()
		if err := dec.Decode(&fields); err != nil {
			return http.StatusBadRequest, `{"errors":{"request":["Unable to parse JSON"]}}`, ""
		}
	case "application/x-www-form-urlencoded", "":
		vals, err := url.ParseQuery(string(body))
		if err != nil {
			return http.StatusBadRequest, `{"errors":{"request":["Unable to parse the form"]}}`, ""
		}
		for k, v := range vals {
			if strings.HasSuffix(k, "_time") {
				fields[k] = json.Number(v[0])
			} else {
				fields[k] = v[0]
			}
		}
	default:
		return http.StatusUnsupportedMediaType, `{"errors":{"request":["Content type was not application/json"]}}`, ""
	}
	a := Annotation{User: user, Stream: stream, StartTime: s.Now().Unix()}
	for k, v := range fields {
		switch k {
		case "title", "source", "description":
			str, ok := v.(string)
			if !ok {
				return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{%q:["is not a string"]}}}`, k), ""
			}
			switch k {
			case "title":
				a.Title = str
			case "source":
				if !validName.MatchString(str) {
					return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{"source":["%s is not a valid source name"]}}}`, str), ""
				}
				a.Source = str
			case "description":
				a.Description = str
			}
		case "start_time", "end_time":
			n, ok := v.(json.Number)
			t, err := n.Int64()
			if !ok || err != nil || t <= 0 {
				return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{%q:["is invalid"]}}}`, k), ""
			}
			if k == "start_time" {
				a.StartTime = t
			} else {
				a.EndTime = t
			}
		case "links":
			if _, ok := v.([]any); !ok {
				return http.StatusBadRequest, `{"errors":{"params":{"links":["is invalid"]}}}`, ""
			}
		default:
			return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{%q:["is not a valid property"]}}}`, k), ""
		}
	}
	switch {
	case strings.TrimSpace(a.Title) == "":
		return http.StatusBadRequest, `{"errors":{"params":{"title":["is required"]}}}`, ""
	case len(a.Title) > 255:
		return http.StatusBadRequest, `{"errors":{"params":{"title":["is too long"]}}}`, ""
	case a.EndTime != 0 && a.EndTime < a.StartTime:
		return http.StatusBadRequest, `{"errors":{"params":{"end_time":["must be after start_time"]}}}`, ""
	}
	s.mu.Lock()
	a.ID = int64(len(s.events) + 1)
	s.events = append(s.events, a)
	s.mu.Unlock()
	resp, _ := json.Marshal(map[string]any{"id": a.ID, "title": a.Title, "description": nullIfEmpty(a.Description),
		"source": nullIfEmpty(a.Source), "start_time": a.StartTime, "end_time": nullIfZero(a.EndTime), "links": []any{}})
	return http.StatusCreated, string(resp), fmt.Sprintf("/v1/annotations/%s/%d", stream, a.ID)
}

func nullIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func nullIfZero(n int64) any {
	if n == 0 {
		return nil
	}
	return n
}

func write(w http.ResponseWriter, status int, body string) {
	if body != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

type reject struct {
	status int
	body   string
}

func (e *reject) Error() string { return e.body }

func (s *Server) paramErr(field, msg, name string, withTime bool) *reject {
	var b string
	if name != "" {
		b = fmt.Sprintf(`{"errors":{"params":{%q:[%q],"name":%q}}}`, field, msg, name)
	} else {
		b = fmt.Sprintf(`{"errors":{"params":{%q:[%q]}}}`, field, msg)
	}
	if withTime {
		b = strings.TrimSuffix(b, "}") + fmt.Sprintf(`,"request_time":%d}`, s.Now().Unix())
	}
	return &reject{http.StatusBadRequest, b}
}

// legacy validates and stores a POST /v1/metrics (rules L1–L17).
func (s *Server) legacy(user, contentType string, body []byte) (int, string) {
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt != "application/json" && mt != "application/x-www-form-urlencoded" && mt != "" {
		return http.StatusUnsupportedMediaType, `{"errors":{"request":["Content type was not application/json"]}}` // L1
	}
	if mt != "application/json" {
		return http.StatusUnsupportedMediaType, `{"errors":{"request":["Content type was not application/json"]}}` // form bodies are not supported here
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var top map[string]any
	if err := dec.Decode(&top); err != nil {
		return http.StatusBadRequest, `{"errors":{"request":["Unable to parse JSON"]}}` // L2
	}
	var ms []Measurement
	seenType := map[string]string{}
	for _, typ := range []string{"gauges", "counters"} {
		list, err := measurements(top[typ])
		if err != nil {
			return http.StatusBadRequest, `{"errors":{"request":["Unable to parse JSON"]}}`
		}
		for _, raw := range list {
			m, rej := s.measurement(user, strings.TrimSuffix(typ, "s"), raw, top)
			if rej != nil {
				return rej.status, rej.body
			}
			lower := strings.ToLower(m.Name)
			if t, ok := seenType[lower]; ok && t != m.Type {
				return s.typeErr(m.Name, t)
			}
			seenType[lower] = m.Type
			ms = append(ms, m)
		}
	}
	if len(ms) == 0 {
		return http.StatusBadRequest, `{"errors":{"request":["Must contain a measurement"]}}` // L3
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range ms { // L16 against stored types
		if t, ok := s.types[user+"\x00"+strings.ToLower(m.Name)]; ok && t != m.Type {
			return s.typeErr(m.Name, t)
		}
		if s.rejectName[strings.ToLower(m.Name)] {
			return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{"name":["%s is not a valid metric name"]}},"request_time":%d}`, m.Name, s.Now().Unix())
		}
	}
	for _, m := range ms {
		s.types[user+"\x00"+strings.ToLower(m.Name)] = m.Type
		s.stored = append(s.stored, m)
	}
	return http.StatusOK, ""
}

func (s *Server) typeErr(name, stored string) (int, string) {
	return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{"type":["'%s' is a %s, but was submitted as different type"]}},"request_time":%d}`,
		name, stored, s.Now().Unix())
}

// measurements accepts the array form and the object forms (hashed by name,
// or by index with an inner name).
func measurements(v any) ([]map[string]any, error) {
	switch v := v.(type) {
	case nil:
		return nil, nil
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("not an object")
			}
			out = append(out, m)
		}
		return out, nil
	case map[string]any:
		out := make([]map[string]any, 0, len(v))
		for k, e := range v {
			m, ok := e.(map[string]any)
			if !ok {
				return nil, fmt.Errorf("not an object")
			}
			if _, has := m["name"]; !has {
				m["name"] = k
			}
			out = append(out, m)
		}
		return out, nil
	}
	return nil, fmt.Errorf("bad measurements")
}

func (s *Server) measurement(user, typ string, raw map[string]any, top map[string]any) (Measurement, *reject) {
	m := Measurement{User: user, Type: typ}
	name, _ := raw["name"].(string)
	if !validName.MatchString(name) {
		return m, &reject{400, fmt.Sprintf(`{"errors":{"params":{"name":["%s is not a valid metric name"]}},"request_time":%d}`, name, s.Now().Unix())} // L4
	}
	m.Name = name
	src, hasSrc := raw["source"]
	if !hasSrc {
		src, hasSrc = top["source"]
	}
	if hasSrc {
		ss, _ := src.(string)
		if !validName.MatchString(ss) || strings.EqualFold(ss, "all") {
			return m, &reject{400, fmt.Sprintf(`{"errors":{"params":{"source":["%s is not a valid source name"]}},"request_time":%d}`, ss, s.Now().Unix())} // L5
		}
		m.Source = ss
	}
	mtRaw, hasMT := raw["measure_time"]
	if !hasMT {
		mtRaw, hasMT = top["measure_time"]
	}
	if hasMT {
		n, ok := mtRaw.(json.Number)
		mt, err := n.Int64()
		if !ok || err != nil || mt <= 0 {
			return m, s.paramErr("measure_time", "is invalid", "", true) // L6
		}
		now := s.Now()
		if mt < now.Add(-s.MaxAge).Unix() {
			return m, s.paramErr("measure_time", "is too far in the past", "", true) // L7
		}
		if mt > now.Add(s.MaxSkew).Unix() {
			return m, s.paramErr("measure_time", "is too far in the future", "", true) // L8
		}
		m.MeasureTime = mt
	} else {
		m.MeasureTime = s.Now().Unix()
	}
	for _, f := range []string{"last", "stddev", "tags"} { // L17
		if _, ok := raw[f]; ok {
			return m, s.paramErr(f, "is not a valid property", name, false)
		}
	}
	nums := map[string]*float64{}
	for _, f := range []string{"value", "sum", "min", "max", "sum_squares"} { // L14
		v, ok := raw[f]
		if !ok {
			continue
		}
		n, isNum := v.(json.Number)
		x, err := n.Float64()
		if !isNum || err != nil || math.IsInf(x, 0) || math.IsNaN(x) || exponent(string(n)) > 126 {
			return m, s.paramErr(f, "is not a number", name, false)
		}
		nums[f] = &x
	}
	var count *int64
	if v, ok := raw["count"]; ok {
		n, isNum := v.(json.Number)
		c, err := n.Int64()
		if !isNum || err != nil || c <= 0 {
			return m, s.paramErr("count", "must be positive", name, false) // L11
		}
		count = &c
	}
	if typ == "counter" {
		if nums["value"] == nil {
			return m, s.paramErr("value", "is required", name, false)
		}
		if *nums["value"] < 0 {
			return m, &reject{400, fmt.Sprintf(`{"errors":{"params":{"value":["must be positive"],"name":[%q]}},"request_time":%d}`, name, s.Now().Unix())} // L15
		}
	} else {
		switch {
		case nums["value"] == nil && count == nil:
			return m, s.paramErr("value", "is required", name, false) // L9
		case count != nil && nums["sum"] == nil:
			return m, s.paramErr("sum", "is required", name, false) // L10
		case count != nil && nums["value"] != nil:
			return m, s.paramErr("value", "must not be set when count is set", name, false) // L12
		}
		for _, f := range []string{"min", "max", "sum_squares"} { // L13
			if nums[f] != nil && count == nil {
				return m, s.paramErr(f, "is invalid", name, false)
			}
		}
		if nums["min"] != nil && nums["max"] != nil && *nums["min"] > *nums["max"] {
			return m, s.paramErr("min", "is invalid", name, false)
		}
	}
	m.Value, m.Sum, m.Min, m.Max, m.SumSquares, m.Count = nums["value"], nums["sum"], nums["min"], nums["max"], nums["sum_squares"], count
	if a, ok := raw["attributes"].(map[string]any); ok {
		m.Attributes = a
	}
	if p, ok := raw["period"].(json.Number); ok {
		if pi, err := p.Int64(); err == nil {
			period := int(pi)
			m.Period = &period
		}
	}
	return m, nil
}

// exponent returns the base-10 exponent of a JSON number's magnitude.
func exponent(n string) int {
	f, err := strconv.ParseFloat(n, 64)
	if err != nil || f == 0 {
		return 0
	}
	return int(math.Floor(math.Log10(math.Abs(f))))
}

// tagged validates a POST /v1/measurements (rules T1, T3–T5, T8) and answers
// 202; this fake does not store tagged measurements.
func (s *Server) tagged(contentType string, body []byte) (int, string) {
	if mt, _, _ := mime.ParseMediaType(contentType); mt != "application/json" {
		return http.StatusUnsupportedMediaType, `{"errors":{"request":["Content type was not application/json"]}}`
	}
	type meas struct {
		Name       string            `json:"name"`
		Value      *float64          `json:"value"`
		Time       int64             `json:"time"`
		Period     int               `json:"period"`
		Count      *int64            `json:"count"`
		Sum        *float64          `json:"sum"`
		Min        *float64          `json:"min"`
		Max        *float64          `json:"max"`
		Last       *float64          `json:"last"`
		Stddev     *float64          `json:"stddev"`
		Tags       map[string]string `json:"tags"`
		Attributes map[string]any    `json:"attributes"`
	}
	var req struct {
		Time         int64             `json:"time"`
		Period       int               `json:"period"`
		Tags         map[string]string `json:"tags"`
		Measurements []meas            `json:"measurements"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		return http.StatusBadRequest, `{"code":400,"message":"Unable to process JSON"}`
	}
	if len(req.Measurements) == 0 {
		return http.StatusBadRequest, `{"errors":{"request":["Must contain a measurement"]}}`
	}
	for _, m := range req.Measurements {
		if !validName.MatchString(m.Name) {
			return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{"name":["%s is not a valid metric name"]}}}`, m.Name)
		}
		if m.Count != nil && (m.Sum == nil || *m.Count <= 0 || m.Value != nil) {
			return http.StatusBadRequest, fmt.Sprintf(`{"errors":{"params":{"count":["is invalid"],"name":%q}}}`, m.Name)
		}
	}
	return http.StatusAccepted, `{}`
}
