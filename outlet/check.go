package outlet

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// What an outlet's configuration may hold, wherever it comes from: the
// config vars of the built-in drain (without a database) and the drains in
// Postgres (drains add|set) are checked by these same functions.

// CheckEndpoint checks an outlet URL: http(s), with a host; no fragment.
// Its errors never print the URL's credentials.
func CheckEndpoint(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return errors.New("not a URL") // url's own error would print the URL, credentials and all
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http(s) URL", RedactURL(s))
	}
	if u.Fragment != "" {
		return errors.New("a URL with a #fragment")
	}
	return nil
}

// CheckMaxBuckets checks an OTLP outlet's bucket cap: 2 (the least the
// OpenTelemetry SDK takes) to MaxMaxBuckets.
func CheckMaxBuckets(n int) error {
	if n < 2 || n > MaxMaxBuckets {
		return fmt.Errorf("%d buckets: 2 to %d (160, the OpenTelemetry SDK's, is the default; 1000 keeps scale 6 for 1 ms to 10 s)", n, MaxMaxBuckets)
	}
	return nil
}

// headerNameRe is an HTTP header name (RFC 9110 token).
var headerNameRe = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")

// HeaderName reports whether s is an HTTP header name (an RFC 9110 token of
// at most 100 bytes).
func HeaderName(s string) bool { return headerNameRe.MatchString(s) }

// HeaderValue reports whether v can be sent as a header's value: no line
// break, no NUL.
func HeaderValue(v string) bool { return !strings.ContainsAny(v, "\r\n\x00") }

// MaxHeaderValueBytes bounds the value of a header a drain in the database
// keeps for an outlet.
const MaxHeaderValueBytes = 8192
