package drain

import (
	"strings"
	"testing"

	"github.com/drainmeter/drainmeter/parse"
)

// TestRefusalOf: a refused pair keeps its metric token (the value cut),
// never the rest of the line; texts that are no pair are not kept.
func TestRefusalOf(t *testing.T) {
	for _, c := range []struct {
		reason parse.Reason
		text   string
		token  string
		name   string
		ok     bool
	}{
		{parse.BadValue, "measure#db.latency=abc", "measure#db.latency=abc", "db.latency", true},
		{parse.BadValue, "count#signups=twelve user=jane@example.com", "count#signups=twelve", "signups", true},
		{parse.BadValue, "sample#x=" + strings.Repeat("9", 100), "sample#x=" + strings.Repeat("9", 24) + "…", "x", true},
		{parse.EmptyName, "measure#=1", "measure#=1", "", true},
		{parse.EmptyMember, "unique#users=", "unique#users=", "users", true},
		{parse.UnterminatedQuote, `sample#q="12 and the rest of the line`, `sample#q="12`, "q", true},
		{parse.BadValue, "service=abc", "service=abc", "router.service", true},
		{parse.BadValue, "measure.db=\x01x", "measure.db=?x", "db", true},
		{parse.LongName, strings.Repeat("n", 300), strings.Repeat("n", 96) + "…", "", true},
		{parse.BadHeader, "<190>1 a whole frame", "", "", false},
		{parse.BadValue, "Hello jane@example.com measure=x", "", "", false}, // an l2met v1 line's message
		{parse.BadValue, "abc", "", "", false},                              // a bare value
	} {
		got, ok := refusalOf(c.reason, []byte(c.text))
		if ok != c.ok || got.Token != c.token || got.Name != c.name || ok && got.Reason != c.reason.String() {
			t.Errorf("%v %q: %+v %v, want %q %q %v", c.reason, c.text, got, ok, c.token, c.name, c.ok)
		}
	}
}
