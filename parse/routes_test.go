package parse

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Real-shaped router lines (Heroku's format, as in testdata/heroku-frames.txt).
const routerHdr = "<158>1 2024-05-01T12:34:56.789012+00:00 host heroku router - "

func routerMsg(method, path, service, status string) string {
	return fmt.Sprintf(`at=info method=%s path=%s host=myapp.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="204.204.204.204" dyno=web.1 connect=1ms service=%s status=%s bytes=13 protocol=https`,
		method, path, service, status)
}

// testRoutes overlap on purpose: /users/:id comes before /users/me, /api/*
// before /api/v1/health.
var testRoutes = []string{"/users/:id", "/users/me", "/orders/:id/items", "/api/*", "/api/v1/health", "/"}

var fuzzRoutes = testRoutes

// routerLines are router lines and the route each gets in auto mode and in
// templates mode.
var routerLines = []struct {
	name, in        string
	auto, templates string
}{
	{"numeric id", routerMsg("GET", `"/users/42"`, "18ms", "200"), "GET /users/:id", "GET /users/:id"},
	{"first template wins", routerMsg("GET", `"/users/me"`, "18ms", "200"), "GET /users/:id", "GET /users/:id"},
	{"uuid in a template", routerMsg("POST", `"/orders/8f14e45f-ceea-467f-a0e6-1e2c8a3b4d5e/items"`, "43ms", "201"), "POST /orders/:id/items", "POST /orders/:id/items"},
	{"rest of the path", routerMsg("GET", `"/api/v2/things/9"`, "5ms", "404"), "GET /api/*", "GET /api/*"},
	{"an earlier template hides a later one", routerMsg("GET", `"/api/v1/health"`, "1ms", "200"), "GET /api/*", "GET /api/*"},
	{"* needs a segment", routerMsg("GET", `"/api"`, "2ms", "301"), "GET /api", "other"},
	{"trailing slash and query on a template", routerMsg("DELETE", `"/users/42/?force=1"`, "9ms", "204"), "DELETE /users/:id", "DELETE /users/:id"},
	{"root with a query", routerMsg("GET", `"/?utm_source=news"`, "3ms", "200"), "GET /", "GET /"},
	{"empty path is /", routerMsg("GET", `""`, "3ms", "200"), "GET /", "GET /"},
	{"hex id", routerMsg("GET", `"/products/8f14e45fceea167a5a36dedd4bea2543"`, "12ms", "200"), "GET /products/:id", "other"},
	{"digits and a trailing slash", routerMsg("GET", `"/invoices/2024/0042/"`, "7ms", "200"), "GET /invoices/:id/:id", "other"},
	{"query string dropped", routerMsg("GET", `"/search?q=café au lait&page=2"`, "143ms", "200"), "GET /search", "other"},
	{"unquoted path", routerMsg("GET", `/deals/buy-golding-farms-three-pepper-mustard-get-a-salad-dressing-free`, "9540ms", "200"),
		"GET /deals/buy-golding-farms-three-pepper-mustard-get-a-salad-dressing-free", "other"},
	{"long mixed token", routerMsg("GET", `"/reset/Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5/confirm"`, "30ms", "302"), "GET /reset/:id/confirm", "other"},
	{"upper-case uuid", routerMsg("GET", `"/profiles/F61AA57D-1913-4A10-BC1D-0759E9566DE0/"`, "10ms", "401"), "GET /profiles/:id", "other"},
	{"short hex is a word", routerMsg("GET", `"/tags/deadbeefcafe123"`, "4ms", "200"), "GET /tags/deadbeefcafe123", "other"},
	{"double slashes", routerMsg("PUT", `"//users//42"`, "11ms", "200"), "PUT /users/:id", "PUT /users/:id"},
	{"escaped quote in a quoted path", routerMsg("GET", `"/a\"b/7"`, "1ms", "400"), `GET /a"b/:id`, "other"},
	{"not a method", routerMsg("get", `"/users/42"`, "1ms", "405"), "other", "other"},
	{"absolute form", routerMsg("GET", `"http://evil.example/x"`, "1ms", "400"), "other", "other"},
	{"percent-encoded kept", routerMsg("GET", `"/files/%E2%9C%93"`, "6ms", "200"), "GET /files/%E2%9C%93", "other"},
	{"not UTF-8", routerMsg("GET", "\"/files/\xff\xfe\"", "6ms", "200"), "other", "other"},
	{"a control character", routerMsg("GET", "\"/files/a\tb\"", "6ms", "200"), "other", "other"},
	{"UTF-8 kept", routerMsg("GET", `"/wiki/Café"`, "6ms", "200"), "GET /wiki/Café", "other"},
	{"not UTF-8 in a parameter", routerMsg("GET", "\"/users/\xff\"", "6ms", "200"), "GET /users/:id", "GET /users/:id"},
}

const routerAt = `"time":"2024-05-01T12:34:56.789012Z"`

// usual is what every router line gives without routes: connect, service,
// bytes, requests, status class; per dyno web.1 with the process type web.
func usual(service float64, status string) string {
	s := fmt.Sprintf(`{"kind":"measure","name":"router.connect","value":1,"unit":"ms","source":"web.1",%s} type_source=web`+"\n", routerAt) +
		fmt.Sprintf(`{"kind":"measure","name":"router.service","value":%v,"unit":"ms","source":"web.1",%s} type_source=web`+"\n", service, routerAt) +
		fmt.Sprintf(`{"kind":"measure","name":"router.bytes","value":13,"unit":"bytes","source":"web.1",%s} type_source=web`+"\n", routerAt) +
		fmt.Sprintf(`{"kind":"count","name":"router.requests","value":1,"source":"web.1",%s} type_source=web`+"\n", routerAt)
	return s + fmt.Sprintf(`{"kind":"count","name":"router.status.%cxx","value":1,"source":"web.1",%s} type_source=web`+"\n", status[0], routerAt)
}

// perRoute is a line's route series: no source, the route as a dimension.
func perRoute(route string, service float64, status string) string {
	r := strings.ReplaceAll(route, `"`, `\"`)
	return fmt.Sprintf(`{"kind":"measure","name":"router.service","value":%v,"unit":"ms","dims":{"route":"%s"},%s}`+"\n", service, r, routerAt) +
		fmt.Sprintf(`{"kind":"count","name":"router.requests","value":1,"dims":{"route":"%s"},%s}`+"\n", r, routerAt) +
		fmt.Sprintf(`{"kind":"count","name":"router.status.%cxx","value":1,"dims":{"route":"%s"},%s}`+"\n", status[0], r, routerAt)
}

func TestRouteSeries(t *testing.T) {
	for _, mode := range []RouteMode{RoutesAuto, RoutesTemplates} {
		p := NewParser(Options{ProcessTypes: true, RouteMetrics: mode, Routes: testRoutes})
		for _, tc := range routerLines {
			t.Run(mode.String()+"/"+tc.name, func(t *testing.T) {
				route := tc.auto
				if mode == RoutesTemplates {
					route = tc.templates
				}
				var service float64
				var status string
				for f := range strings.FieldsSeq(tc.in) {
					if v, ok := strings.CutPrefix(f, "service="); ok {
						fmt.Sscanf(v, "%gms", &service)
					}
					if v, ok := strings.CutPrefix(f, "status="); ok {
						status = v
					}
				}
				want := usual(service, status) + perRoute(route, service, status)
				if got := describe(p, []byte(routerHdr+tc.in)); got != want {
					t.Errorf("input %q\n got:\n%s\nwant:\n%s", tc.in, got, want)
				}
			})
		}
	}
}

// TestRouteSeriesWhole spells out the whole output of a few lines.
func TestRouteSeriesWhole(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		in   string
		want string
	}{
		{"off: router series only", Options{Routes: testRoutes}, routerHdr + routerMsg("GET", `"/users/42"`, "18ms", "200"),
			`{"kind":"measure","name":"router.connect","value":1,"unit":"ms","source":"web.1",` + routerAt + "}\n" +
				`{"kind":"measure","name":"router.service","value":18,"unit":"ms","source":"web.1",` + routerAt + "}\n" +
				`{"kind":"measure","name":"router.bytes","value":13,"unit":"bytes","source":"web.1",` + routerAt + "}\n" +
				`{"kind":"count","name":"router.requests","value":1,"source":"web.1",` + routerAt + "}\n" +
				`{"kind":"count","name":"router.status.2xx","value":1,"source":"web.1",` + routerAt + "}\n"},
		{"prefixes: the route series' source is the source prefix", Options{Prefix: "shop", SourcePrefix: "prod", RouteMetrics: RoutesTemplates, Routes: []string{"/orders/:order_id"}},
			routerHdr + routerMsg("PATCH", `"/orders/77"`, "25ms", "422"),
			`{"kind":"measure","name":"shop.router.connect","value":1,"unit":"ms","source":"prod.web.1",` + routerAt + "}\n" +
				`{"kind":"measure","name":"shop.router.service","value":25,"unit":"ms","source":"prod.web.1",` + routerAt + "}\n" +
				`{"kind":"measure","name":"shop.router.bytes","value":13,"unit":"bytes","source":"prod.web.1",` + routerAt + "}\n" +
				`{"kind":"count","name":"shop.router.requests","value":1,"source":"prod.web.1",` + routerAt + "}\n" +
				`{"kind":"count","name":"shop.router.status.4xx","value":1,"source":"prod.web.1",` + routerAt + "}\n" +
				`{"kind":"measure","name":"shop.router.service","value":25,"unit":"ms","source":"prod","dims":{"route":"PATCH /orders/:order_id"},` + routerAt + "}\n" +
				`{"kind":"count","name":"shop.router.requests","value":1,"source":"prod","dims":{"route":"PATCH /orders/:order_id"},` + routerAt + "}\n" +
				`{"kind":"count","name":"shop.router.status.4xx","value":1,"source":"prod","dims":{"route":"PATCH /orders/:order_id"},` + routerAt + "}\n"},
		{"H10: no service, no dyno; the route still counts", Options{RouteMetrics: RoutesAuto},
			`<158>1 2018-03-29T14:18:26.133358+00:00 host heroku router - at=error code=H10 desc="App crashed" method=GET path="/" host=scrooge.niteo.co request_id=7a2a1014-6826-4d46-86b0-db4668cbf8c0 fwd="77.208.20.53" dyno= connect= service= status=503 bytes= protocol=http`,
			`{"kind":"count","name":"router.requests","value":1,"time":"2018-03-29T14:18:26.133358Z"}` + "\n" +
				`{"kind":"count","name":"router.status.5xx","value":1,"time":"2018-03-29T14:18:26.133358Z"}` + "\n" +
				`{"kind":"count","name":"router.errors.H10","value":1,"time":"2018-03-29T14:18:26.133358Z"}` + "\n" +
				`{"kind":"count","name":"router.requests","value":1,"dims":{"route":"GET /"},"time":"2018-03-29T14:18:26.133358Z"}` + "\n" +
				`{"kind":"count","name":"router.status.5xx","value":1,"dims":{"route":"GET /"},"time":"2018-03-29T14:18:26.133358Z"}` + "\n"},
		{"H24: no status, a route", Options{RouteMetrics: RoutesAuto},
			`<158>1 2024-05-01T12:34:12.000000+00:00 host heroku router - at=error code=H24 desc="Forced close" method=GET path="/stream/9" host=myapp.herokuapp.com fwd=17.17.17.17 dyno=web.1 connect=1ms service=80000ms status= bytes=18`,
			`{"kind":"measure","name":"router.connect","value":1,"unit":"ms","source":"web.1","time":"2024-05-01T12:34:12Z"}` + "\n" +
				`{"kind":"measure","name":"router.service","value":80000,"unit":"ms","source":"web.1","time":"2024-05-01T12:34:12Z"}` + "\n" +
				`{"kind":"measure","name":"router.bytes","value":18,"unit":"bytes","source":"web.1","time":"2024-05-01T12:34:12Z"}` + "\n" +
				`{"kind":"count","name":"router.requests","value":1,"source":"web.1","time":"2024-05-01T12:34:12Z"}` + "\n" +
				`{"kind":"count","name":"router.errors.H24","value":1,"source":"web.1","time":"2024-05-01T12:34:12Z"}` + "\n" +
				`{"kind":"measure","name":"router.service","value":80000,"unit":"ms","dims":{"route":"GET /stream/:id"},"time":"2024-05-01T12:34:12Z"}` + "\n" +
				`{"kind":"count","name":"router.requests","value":1,"dims":{"route":"GET /stream/:id"},"time":"2024-05-01T12:34:12Z"}` + "\n"},
		{"no path: no route series", Options{RouteMetrics: RoutesAuto},
			routerHdr + `at=info method=GET host=x dyno=web.1 status=200`,
			`{"kind":"count","name":"router.requests","value":1,"source":"web.1",` + routerAt + "}\n" +
				`{"kind":"count","name":"router.status.2xx","value":1,"source":"web.1",` + routerAt + "}\n"},
		{"a path that is too long to be a route", Options{RouteMetrics: RoutesAuto},
			routerHdr + `method=GET path=/` + strings.Repeat("abcdefgh/", 40) + ` status=200`,
			`{"kind":"count","name":"router.requests","value":1,` + routerAt + "}\n" +
				`{"kind":"count","name":"router.status.2xx","value":1,` + routerAt + "}\n" +
				`{"kind":"count","name":"router.requests","value":1,"dims":{"route":"other"},` + routerAt + "}\n" +
				`{"kind":"count","name":"router.status.2xx","value":1,"dims":{"route":"other"},` + routerAt + "}\n"},
		{"route keys on an app line are nothing", Options{RouteMetrics: RoutesAuto},
			`<190>1 2024-05-01T12:34:17.000000+00:00 host app web.1 - method=GET path=/users/1 service=10ms status=200`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := describe(NewParser(tt.opts), []byte(tt.in)); got != tt.want {
				t.Errorf("input %q\n got:\n%s\nwant:\n%s", tt.in, got, tt.want)
			}
		})
	}
}

func TestIDSegments(t *testing.T) {
	for s, want := range map[string]bool{
		"42": true, "0042": true, "8f14e45f-ceea-467f-a0e6-1e2c8a3b4d5e": true, "8F14E45F-CEEA-467F-A0E6-1E2C8A3B4D5E": true,
		"8f14e45fceea167a": true, "deadbeefcafe123": false, "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5": true, "abcdefghijklmnopqrstuvwxyz": false,
		"v1": false, "users": false, "a1b2c3d4e5f6g7h8i9j0k1l2": true, "a1b2c3d4e5f6g7h8i9j0k1l": false, "1.5": false, "%E2%9C%93": false,
		"8f14e45f-ceea-467f-a0e6-1e2c8a3b4d5": true /* a long token */, "how-to-cook-a-great-pasta": false, "section-2": false,
	} {
		if got := isIDSegment([]byte(s)); got != want {
			t.Errorf("isIDSegment(%q) = %v, want %v", s, got, want)
		}
	}
}

func TestRouteTemplates(t *testing.T) {
	good := []string{"/", "/users/:id", "/api/*", "/a/:b_1/c", "/orders/:id/items/", "/files/report.pdf", "/a:b"}
	for _, s := range good {
		if err := CheckRouteTemplate(s); err != nil {
			t.Errorf("%q: %v", s, err)
		}
	}
	for _, s := range []string{"", "users", "/a b", "/a,b", "/a?x=1", "/*/x", "/a*", "/:", "/:a-b", "/é", `/a"b`, "/" + strings.Repeat("a", 200)} {
		if err := CheckRouteTemplate(s); err == nil {
			t.Errorf("%q: accepted", s)
		}
	}
	got, err := ParseRoutes(" /users/:id, /api/* ,,")
	if err != nil || strings.Join(got, "|") != "/users/:id|/api/*" {
		t.Errorf("ParseRoutes: %q %v", got, err)
	}
	if _, err := ParseRoutes(strings.Repeat("/a,", MaxRouteTemplates+1)); err == nil {
		t.Error("too many templates accepted")
	}
	for s, want := range map[string]RouteMode{"": RoutesOff, "off": RoutesOff, "Templates": RoutesTemplates, "auto": RoutesAuto} {
		if m, err := ParseRouteMode(s); err != nil || m != want {
			t.Errorf("ParseRouteMode(%q) = %v %v", s, m, err)
		}
	}
	if _, err := ParseRouteMode("on"); err == nil {
		t.Error(`"on" accepted`)
	}
}

// TestRouteTemplatesRecompiled: a parser that serves drains with different
// templates in turn uses each drain's.
func TestRouteTemplatesRecompiled(t *testing.T) {
	p := NewParser(Options{})
	line := []byte(routerHdr + routerMsg("GET", `"/users/me"`, "1ms", "200"))
	routeOf := func() string {
		var r string
		p.Frame(line, time.Time{}, func(m *Measurement) {
			if v, ok := DimValue(string(m.Dims), RouteDim); ok {
				r = v
			}
		})
		return r
	}
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{RouteMetrics: RoutesTemplates, Routes: []string{"/users/me", "/users/:id"}}, "GET /users/me"},
		{Options{RouteMetrics: RoutesTemplates, Routes: []string{"/users/:id", "/users/me"}}, "GET /users/:id"},
		{Options{RouteMetrics: RoutesTemplates}, "other"},
		{Options{RouteMetrics: RoutesAuto}, "GET /users/me"},
		{Options{Routes: []string{"/users/:id"}}, ""},
	} {
		p.Reset(tc.opts)
		if got := routeOf(); got != tc.want {
			t.Errorf("%+v: route %q, want %q", tc.opts, got, tc.want)
		}
	}
}

// TestPlatformAPILines: the Platform API's lines (app api) as counts,
// samples and events; never the user's e-mail.
func TestPlatformAPILines(t *testing.T) {
	const hdr = "<134>1 2024-05-01T14:02:07.5+00:00 host app api - "
	const at = `"time":"2024-05-01T14:02:07.5Z"`
	tests := []struct {
		name string
		opts Options
		in   string
		want string
	}{
		{"release", Options{}, "Release v74 created by user ned@example.com",
			`{"kind":"count","name":"heroku.releases","value":1,` + at + "}\n" +
				`{"kind":"sample","name":"heroku.release.version","value":74,` + at + "}\n" +
				`{"kind":"event","name":"heroku.deploys","value":1,"title":"Release v74 created",` + at + "}\n"},
		{"deploy", Options{}, "Deploy d706b4a by user ned@example.com",
			`{"kind":"count","name":"heroku.deploys","value":1,` + at + "}\n" +
				`{"kind":"event","name":"heroku.deploys","value":1,"title":"Deploy d706b4a",` + at + "}\n"},
		{"rollback", Options{Prefix: "shop", SourcePrefix: "prod", ProcessTypes: true}, "Rollback to v73 by user kate@example.com",
			`{"kind":"count","name":"shop.heroku.rollbacks","value":1,"source":"prod",` + at + "}\n" +
				`{"kind":"event","name":"shop.heroku.deploys","value":1,"title":"Rollback to v73",` + at + "}\n"},
		{"scaled to", Options{}, "Scaled to mailer@3:Performance-L web@5:Standard-2X by user someuser@gmail.com",
			`{"kind":"sample","name":"heroku.formation.mailer","value":3,"source":"mailer",` + at + "}\n" +
				`{"kind":"sample","name":"heroku.formation.web","value":5,"source":"web",` + at + "}\n"},
		{"scale to", Options{SourcePrefix: "prod"}, "Scale to web=4, worker=2 by user kate@example.com",
			`{"kind":"sample","name":"heroku.formation.web","value":4,"source":"prod.web",` + at + "}\n" +
				`{"kind":"sample","name":"heroku.formation.worker","value":2,"source":"prod.worker",` + at + "}\n"},
		{"scale to zero", Options{}, "Scale to worker=0 by user kate@example.com",
			`{"kind":"sample","name":"heroku.formation.worker","value":0,"source":"worker",` + at + "}\n"},
		{"maintenance on", Options{}, "Set maintenance mode on by user kate@example.com",
			`{"kind":"sample","name":"heroku.maintenance","value":1,` + at + "}\n"},
		{"maintenance off", Options{}, "Set maintenance mode off by user kate@example.com",
			`{"kind":"sample","name":"heroku.maintenance","value":0,` + at + "}\n"},
		{"a title never holds an e-mail", Options{}, "Deploy d706b4a for ned@example.com",
			`{"kind":"count","name":"heroku.deploys","value":1,` + at + "}\n" +
				`{"kind":"event","name":"heroku.deploys","value":1,"title":"Deploy d706b4a for",` + at + "}\n"},
		{"other API lines are nothing", Options{}, "Set FOO, BAR config vars by user kate@example.com", ""},
		{"a release without its number is nothing", Options{}, "Release vX created by user kate@example.com", ""},
		{"formation types are names", Options{}, "Scale to we;b=4, =2, worker=x by user kate@example.com", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := describe(NewParser(tt.opts), []byte(hdr+tt.in))
			if got != tt.want {
				t.Errorf("input %q\n got:\n%s\nwant:\n%s", tt.in, got, tt.want)
			}
			if strings.Contains(got, "@") {
				t.Errorf("an e-mail in %s", got)
			}
		})
	}
	// The same text from a dyno is not the Platform API.
	if got := describe(NewParser(Options{}), []byte("<134>1 2024-05-01T14:02:07.5+00:00 host app web.1 - Release v74 created by user x@y")); got != "" {
		t.Errorf("a dyno's line read as the API's: %s", got)
	}
}

// TestLosses: log-shuttle's headers count as its L12/L13 lines do, and a
// loss that the batch's own L12 line reported is not counted twice.
func TestLosses(t *testing.T) {
	recv := time.Date(2024, 5, 1, 12, 35, 0, 0, time.UTC)
	p := NewParser(Options{SourcePrefix: "prod"})
	var got []string
	emit := func(m *Measurement) { got = append(got, string(m.AppendJSON(nil))) }
	p.Frame([]byte("<172>1 2013-11-04T21:31:32.125756+00:00 host app log-shuttle - Error L12: 222 messages dropped since 2013-11-04T21:31:32.125756+00:00."), recv, emit)
	p.Losses(222, 5, recv, emit)
	want := []string{
		`{"kind":"count","name":"logplex.dropped","value":222,"source":"prod","time":"2013-11-04T21:31:32.125756Z"}`,
		`{"kind":"count","name":"logplex.lost","value":5,"source":"prod","time":"2024-05-01T12:35:00Z"}`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || p.Dropped != 222 || p.Lost != 5 {
		t.Errorf("got %q dropped %d lost %d\nwant %q", got, p.Dropped, p.Lost, want)
	}
	p.Reset(Options{})
	got = nil
	p.Losses(7, 0, recv, emit)
	if len(got) != 1 || got[0] != `{"kind":"count","name":"logplex.dropped","value":7,"time":"2024-05-01T12:35:00Z"}` || p.Dropped != 7 {
		t.Errorf("header only: %q, dropped %d", got, p.Dropped)
	}
}

// The route rule, as the config (ROUTES, ROUTE_METRICS), the drains
// command and the parse command apply it.
func TestCheckRoutes(t *testing.T) {
	some := []string{"/users/:id"}
	for _, c := range []struct {
		mode      RouteMode
		templates []string
		want      error
	}{
		{RoutesOff, nil, nil},
		{RoutesOff, some, ErrRoutesOff},
		{RoutesTemplates, nil, ErrNoRouteTemplates},
		{RoutesTemplates, []string{}, ErrNoRouteTemplates},
		{RoutesTemplates, some, nil},
		{RoutesAuto, nil, nil},
		{RoutesAuto, some, nil},
	} {
		if got := CheckRoutes(c.mode, c.templates); got != c.want {
			t.Errorf("CheckRoutes(%s, %q) = %v, want %v", c.mode, c.templates, got, c.want)
		}
	}
	for _, c := range []struct {
		mode, want RouteMode
		templates  []string
	}{
		{RoutesOff, RoutesTemplates, some},
		{RoutesOff, RoutesOff, nil},
		{RoutesAuto, RoutesAuto, some},
		{RoutesTemplates, RoutesTemplates, some},
		{RoutesTemplates, RoutesTemplates, nil},
	} {
		if got := ImpliedRouteMode(c.mode, c.templates); got != c.want {
			t.Errorf("ImpliedRouteMode(%s, %q) = %s, want %s", c.mode, c.templates, got, c.want)
		}
	}
}
