package outlet

import (
	"strings"
	"testing"
)

func TestCheckEndpoint(t *testing.T) {
	for _, c := range []struct{ in, err string }{
		{"https://otlp.example.com/v1/metrics", ""},
		{"http://127.0.0.1:9090/api/v1/write", ""},
		{"https://user:pw@prom.example.com/api/v1/write?token=s3cret", ""},
		{"ftp://user:pw@example.com/x", `"ftp://example.com/x" is not an http(s) URL`},
		{"https:///v1/metrics", "is not an http(s) URL"},
		{"example.com/v1/metrics", "is not an http(s) URL"},
		{"https://example.com/v1/metrics#frag", "a URL with a #fragment"},
		{"https://user:pw@exa mple.com/%zz", "not a URL"},
	} {
		err := CheckEndpoint(c.in)
		switch {
		case c.err == "" && err != nil:
			t.Errorf("CheckEndpoint(%q) = %v, want nil", c.in, err)
		case c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)):
			t.Errorf("CheckEndpoint(%q) = %v, want %q", c.in, err, c.err)
		case err != nil && (strings.Contains(err.Error(), "pw") || strings.Contains(err.Error(), "s3cret")):
			t.Errorf("CheckEndpoint(%q) = %v: it prints a credential", c.in, err)
		}
	}
}

func TestCheckMaxBuckets(t *testing.T) {
	for n, ok := range map[int]bool{1: false, 2: true, DefaultMaxBuckets: true, MaxMaxBuckets: true, MaxMaxBuckets + 1: false, -1: false} {
		if err := CheckMaxBuckets(n); (err == nil) != ok {
			t.Errorf("CheckMaxBuckets(%d) = %v", n, err)
		}
	}
}

func TestHeaderNameAndValue(t *testing.T) {
	for s, ok := range map[string]bool{"Authorization": true, "X-Scope-OrgID": true, "a!#$%&'*+.^_`|~": true,
		"": false, "Authorization:": false, "Bad Name": false, strings.Repeat("a", 100): true, strings.Repeat("a", 101): false} {
		if HeaderName(s) != ok {
			t.Errorf("HeaderName(%q) = %v", s, !ok)
		}
	}
	for s, ok := range map[string]bool{"Basic abc=": true, "": true, "a\rb": false, "a\nb": false, "a\x00b": false} {
		if HeaderValue(s) != ok {
			t.Errorf("HeaderValue(%q) = %v", s, !ok)
		}
	}
}
