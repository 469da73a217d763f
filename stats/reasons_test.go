package stats

import (
	"maps"
	"testing"

	"github.com/drainmeter/drainmeter/parse"
)

// Every reason the parser has is counted, under its own name, once.
func TestPairRejectsCoverTheParser(t *testing.T) {
	seen := map[parse.Reason]int{}
	for _, r := range PairRejects {
		seen[r.parse]++
		if r.Name != r.parse.String() {
			t.Errorf("%s: named %q, the parser says %q", r.Counter, r.Name, r.parse)
		}
		if r.Text == "" {
			t.Errorf("%s: no text for the pages", r.Name)
		}
	}
	for r := parse.Reason(0); r < parse.NumReasons; r++ {
		want := 1
		if r == parse.BadHeader {
			want = 0 // a frame's
		}
		if seen[r] != want {
			t.Errorf("parse reason %s: in PairRejects %d times, want %d", r, seen[r], want)
		}
	}
	names := map[string]bool{}
	for _, rs := range [][]Reason{FrameRejects, PairRejects, Refusals} {
		for _, r := range rs {
			if names[r.Name] {
				t.Errorf("two reasons named %q", r.Name)
			}
			names[r.Name] = true
		}
	}
}

func TestAddPairRejects(t *testing.T) {
	var rj parse.Rejects
	for r := range rj {
		rj[r] = uint64(10 + r)
	}
	d := NewRegistry().Drain("d")
	d.AddPairRejects(&rj)
	if got, want := d.Get(PairsRejected), rj.Total()-rj[parse.BadHeader]; got != want {
		t.Errorf("pairs_rejected = %d, want %d", got, want)
	}
	for _, c := range []struct {
		c Counter
		r parse.Reason
	}{{PairsBadValue, parse.BadValue}, {PairsEmptyName, parse.EmptyName}, {PairsEmptyMember, parse.EmptyMember},
		{PairsLongMember, parse.LongMember}, {PairsUnterminatedQuote, parse.UnterminatedQuote}, {PairsLongName, parse.LongName}} {
		if d.Get(c.c) != rj[c.r] {
			t.Errorf("%s = %d, want %d", c.c, d.Get(c.c), rj[c.r])
		}
	}
	if d.Get(RejectedBadHeader) != 0 {
		t.Errorf("rejected_bad_header = %d: the drain counts bad headers as frames", d.Get(RejectedBadHeader))
	}

	s := d.Snapshot()
	s[RejectedOversized] = 2
	want := map[string]uint64{"oversized": 2, "bad_value": 11, "empty_name": 12, "empty_member": 13, "long_member": 14,
		"unterminated_quote": 15, "long_name": 16}
	if got := s.Rejected(); !maps.Equal(got, want) {
		t.Errorf("Rejected() = %v, want %v", got, want)
	}
}

func TestReasonText(t *testing.T) {
	for _, c := range []struct {
		in   []Reason
		name string
		want string
	}{
		{PairRejects, "bad_value", "not a number"},
		{Refusals, "unauthorized", "401 unauthorized (no or wrong credentials)"},
		{Refusals, "bad_value", ""},
		{FrameRejects, "oversized", ""},
		{PairRejects, "nope", ""},
	} {
		if got := ReasonText(c.in, c.name); got != c.want {
			t.Errorf("ReasonText(%q) = %q, want %q", c.name, got, c.want)
		}
	}
	if len(RefusalCounters) != len(Refusals) || RefusalCounters[0] != Unauthorized || RefusalCounters[5] != SlowBody {
		t.Errorf("RefusalCounters = %v", RefusalCounters)
	}
}
