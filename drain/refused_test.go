package drain

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"time"

	"strings"
	"testing"

	"github.com/drainmeter/drainmeter/parse"
	"github.com/drainmeter/drainmeter/stats"
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
		got, ok := refusalOf(parse.NewParser(parse.Options{}), c.reason, []byte(c.text))
		if ok != c.ok || got.Token != c.token || got.Name != c.name || ok && got.Reason != c.reason.String() {
			t.Errorf("%v %q: %+v %v, want %q %q %v", c.reason, c.text, got, ok, c.token, c.name, c.ok)
		}
	}
	// A drain with a prefix: the name is the series' (shop.db.latency),
	// the one its explorer page shows, the token what the line said.
	p := parse.NewParser(parse.Options{Prefix: "shop"})
	for text, name := range map[string]string{"measure#db.latency=abc": "shop.db.latency", "service=abc": "shop.router.service", "measure#=1": ""} {
		if got, ok := refusalOf(p, parse.BadValue, []byte(text)); !ok || got.Name != name || got.Token != text {
			t.Errorf("prefix shop, %q: %+v %v, want name %q", text, got, ok, name)
		}
	}
}

type refusalRec struct{ batches [][]Refusal }

func (r *refusalRec) Refused(_ string, _ time.Time, rs []Refusal) {
	r.batches = append(r.batches, slices.Clone(rs))
}

// TestRefusalsOfCountedBatches: a counted batch hands its refused pairs'
// tokens over (at most maxRefusalsPerBatch), a retried one does not, and
// a batch without any hands nothing.
func TestRefusalsOfCountedBatches(t *testing.T) {
	rec := &refusalRec{}
	h := NewHandler(Config{MaxBodyBytes: 1 << 20, Refusals: rec}, NewSecretAuth(Caller{ID: "d"}, "pw"), &countSink{},
		NewRecentIDs(time.Hour, 100), stats.NewRegistry(), slog.New(slog.DiscardHandler), time.Now)
	post := func(id, msg string) {
		t.Helper()
		body := strconv.Itoa(len(msg)) + " " + msg
		req := httptest.NewRequest(http.MethodPost, "/logs", strings.NewReader(body))
		req.SetBasicAuth("app", "pw")
		req.Header.Set("Logplex-Frame-Id", id)
		w := httptest.NewRecorder()
		h.ServeHTTP(w, req)
		if w.Code != 200 {
			t.Fatalf("%d", w.Code)
		}
	}
	var bad strings.Builder
	for i := range 12 {
		fmt.Fprintf(&bad, " measure#m%d=x%d", i, i)
	}
	line := "<190>1 2024-05-01T12:34:01Z host app web.1 - count#ok=1" + bad.String() + " email=jane@example.com"
	post("A", line)
	post("A", line) // a retry: counted once
	post("B", "<190>1 2024-05-01T12:34:01Z host app web.1 - count#ok=1")
	if len(rec.batches) != 1 || len(rec.batches[0]) != maxRefusalsPerBatch {
		t.Fatalf("refusals %v", rec.batches)
	}
	if got := rec.batches[0][0]; got.Token != "measure#m0=x0" || got.Reason != "bad_value" || got.Name != "m0" {
		t.Errorf("first refusal %+v", got)
	}
}
