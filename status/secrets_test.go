package status

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestNoSecrets plants secrets wherever one could reach the pages — in the
// snapshot's free-text and URL fields, in the configured base URL, and in
// every request header but the Host — and greps every page and JSON for
// them.
func TestNoSecrets(t *testing.T) {
	planted := []string{
		"tgt-pass-1", "tgt-query-2", "tgt-frag-3", "tgt-pass-4", "tgt-slash-5", "tgt-user-6",
		"err-pass-7", "err-query-8", "err-bearer-9", "err-key-10", "err-pass-11",
		"add-secret-12", "base-pass-13",
		"hdr-user-14", "hdr-cookie-15", "hdr-referer-16", "hdr-agent-17", "hdr-fwdhost-18",
		"hdr-fwd-19", "hdr-reqid-20", "hdr-query-21", "hdr-host-22", "hdr-custom-23",
		testAdmin, ownerSecret, "builtin-secret-for-tests",
	}
	snap := testSnapshot()
	active := &snap.Drains[0]
	active.Outlets = append(active.Outlets,
		Outlet{Kind: "librato", State: "paused",
			Target:    "https://tgt-user-6%40example.com:tgt-pass-1@metrics-api.librato.com/v1/metrics?api_key=tgt-query-2#tgt-frag-3",
			LastError: `librato: post "https://user:err-pass-7@metrics-api.librato.com/v1/metrics?token=err-query-8": 401 Unauthorized`},
		Outlet{Kind: "otlp", State: "retrying",
			Target:    "otlp-user:tgt-pass-4@otel.example.com:4318",
			LastError: `otlp: refused with Authorization: Bearer err-bearer-9; api_key=err-key-10`},
		Outlet{Kind: "remotewrite", State: "giving_up",
			Target:    "https://u:pa/tgt-slash-5@prom.example.com/api/v1/write",
			LastError: `remotewrite: Post "https://u:err-pass-11@prom.example.com/api/v1/write": context deadline exceeded`},
	)
	snap.Drains[1].AddCommand = "heroku drains:add 'https://default:add-secret-12@dm.example.com/logs' -a api-gateway"

	cfg := Config{AdminPassword: testAdmin, OnDyno: true, BaseURL: "https://cfg:base-pass-13@dm.example.com", Version: testVersion}
	h := NewHandler(cfg, &fakeSource{snap: snap}, testOwners(), discardLog())

	headers := map[string]string{
		"Cookie":            "session=hdr-cookie-15",
		"Referer":           "https://elsewhere.example.com/?q=hdr-referer-16",
		"User-Agent":        "hdr-agent-17",
		"X-Forwarded-Host":  "hdr-fwdhost-18",
		"Forwarded":         "for=1.2.3.4;host=hdr-fwd-19",
		"X-Request-Id":      "hdr-reqid-20",
		"X-Drainmeter-Test": "hdr-custom-23",
	}
	get := func(path, host, user, pass string) (int, string) {
		r := httptest.NewRequest(http.MethodGet, "http://dm.example.com"+path+"?q=hdr-query-21", nil)
		r.Host = host
		r.SetBasicAuth(user, pass)
		for k, v := range headers {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code, w.Body.String() + strings.Join(flatten(w.Header()), "\n")
	}
	for _, c := range []struct{ path, host, user, pass string }{
		{"/", "dm.example.com", "hdr-user-14", testAdmin},
		{"/status.json", "dm.example.com", "hdr-user-14", testAdmin},
		{"/", "hdr-host-22@evil.example.com", "hdr-user-14", testAdmin},
		{"/status.json", "hdr-host-22@evil.example.com", "hdr-user-14", testAdmin},
		{"/drains/" + activeID, "dm.example.com", activeID, ownerSecret},
		{"/drains/" + activeID + ".json", "dm.example.com", activeID, ownerSecret},
		{"/drains/default", "dm.example.com", "hdr-user-14", "builtin-secret-for-tests"},
		{"/drains/default.json", "dm.example.com", "hdr-user-14", "builtin-secret-for-tests"},
		{"/drains/default", "dm.example.com", "hdr-user-14", testAdmin},
		{"/", "dm.example.com", "hdr-user-14", "wrong"},
		{"/drains/" + activeID, "dm.example.com", "hdr-user-14", "wrong"},
	} {
		code, out := get(c.path, c.host, c.user, c.pass)
		if code != http.StatusOK && code != http.StatusUnauthorized {
			t.Errorf("%s: status %d", c.path, code)
		}
		for _, s := range planted {
			if strings.Contains(out, s) {
				t.Errorf("%s (host %s, status %d) shows the secret %q", c.path, c.host, code, s)
			}
		}
		if code == http.StatusOK && (c.path == "/" || c.path == "/drains/"+activeID) && !strings.Contains(out, "prom.example.com") {
			t.Errorf("%s: the page lost the outlets' hosts along with their credentials", c.path)
		}
	}
}

func flatten(h http.Header) []string {
	var out []string
	for k, vs := range h {
		for _, v := range vs {
			out = append(out, k+": "+v)
		}
	}
	return out
}

func TestRedact(t *testing.T) {
	for _, c := range []struct{ f, in, want string }{
		{"target", "https://metrics-api.librato.com/v1/metrics", "https://metrics-api.librato.com/v1/metrics"},
		{"target", "stdout", "stdout"},
		{"target", "https://user:pw@host.example.com:8443/a/b?x=1#f", "https://host.example.com:8443/a/b?…"},
		{"target", "https://pw@host.example.com/", "https://host.example.com/"},
		{"target", "https://u:p/w@host.example.com/x", "https://host.example.com/x"},
		{"target", "https://u:p@w@host.example.com/x", "https://host.example.com/x"},
		{"target", "user:pw@host.example.com:4318", "host.example.com:4318"},
		{"text", `post "https://u:pw@h.example.com/w?token=t": EOF`, `post "https://h.example.com/w?…": EOF`},
		{"text", "dial tcp 10.0.0.1:443: connection refused", "dial tcp 10.0.0.1:443: connection refused"},
		{"text", "401: Authorization: Bearer abcdefgh123", "401: Authorization: [redacted]"},
		{"text", "refused: bearer abcdefgh123", "refused: bearer [redacted]"},
		{"text", "bad api_key=abc123 and password: hunter2, x", "bad api_key=[redacted] and password: [redacted], x"},
		{"text", `{"token":"abc123"}`, `{"token":"[redacted]"}`},
		{"text", "remotewrite: 400 Bad Request: out of order sample", "remotewrite: 400 Bad Request: out of order sample"},
		{"text", "librato: 401 Unauthorized (credentials refused)", "librato: 401 Unauthorized (credentials refused)"},
		{"add", "heroku drains:add 'https://d1:s3cret@h/logs' -a a", "heroku drains:add 'https://d1:" + SecretPlaceholder + "@h/logs' -a a"},
		{"add", "heroku drains:add 'https://d1:" + SecretPlaceholder + "@h/logs' -a a", "heroku drains:add 'https://d1:" + SecretPlaceholder + "@h/logs' -a a"},
		{"add", `heroku drains:add "https://a:$(heroku config:get DRAIN_SECRET -a b)@h/logs" -a a`, `heroku drains:add "https://a:$(heroku config:get DRAIN_SECRET -a b)@h/logs" -a a`},
		{"add", "heroku drains:add 'https://h:8443/logs' -a a", "heroku drains:add 'https://h:8443/logs' -a a"},
		{"add", "heroku drains:add 'https://d1:s3/cr@et@h/logs' -a a", "heroku drains:add 'https://d1:" + SecretPlaceholder + "@h/logs' -a a"},
		{"add", "heroku drains:add 'https://d1:$(echo x@y)@h/logs' -a a", "heroku drains:add 'https://d1:" + SecretPlaceholder + "@h/logs' -a a"},
	} {
		var got string
		switch c.f {
		case "target":
			got = redactTarget(c.in)
		case "text":
			got = redactText(c.in)
		case "add":
			got = elideSecrets(c.in)
		}
		if got != c.want {
			t.Errorf("%s(%q)\n got %q\nwant %q", c.f, c.in, got, c.want)
		}
	}
}
