package stats

import "github.com/drainmeter/drainmeter/parse"

// Reason is one way input is turned away, named once here: the counter that
// counts it, the name the status pages, their JSON and the explorer key it
// by, and what the pages say it means. The parser keeps its own codes
// (parse.Reason, whose names these are: parse stays free of counters);
// PairRejects maps them once.
type Reason struct {
	Counter Counter
	Name    string // bad_value, oversized, unauthorized, …
	Text    string // what the pages say it means; "": the name says it

	parse parse.Reason // PairRejects: the parser's code
}

// FrameRejects are the reasons a frame is rejected; their counters add up
// to FramesRejected.
var FrameRejects = []Reason{
	{Counter: RejectedBadHeader, Name: parse.BadHeader.String()}, // the syslog header could not be read
	{Counter: RejectedOversized, Name: "oversized"},              // longer than the frame limit: skipped
	{Counter: RejectedFraming, Name: "framing"},                  // a bad length or a cut frame: the rest of the batch
}

// PairRejects are the reasons the parser rejects one pair of a line (every
// parse.Reason but BadHeader, a frame's); their counters add up to
// PairsRejected.
var PairRejects = []Reason{
	{Counter: PairsBadValue, Name: parse.BadValue.String(), Text: "not a number", parse: parse.BadValue},
	{Counter: PairsEmptyName, Name: parse.EmptyName.String(), Text: "no metric name", parse: parse.EmptyName},
	{Counter: PairsEmptyMember, Name: parse.EmptyMember.String(), Text: "no member", parse: parse.EmptyMember},
	{Counter: PairsLongMember, Name: parse.LongMember.String(), Text: "member over 128 bytes", parse: parse.LongMember},
	{Counter: PairsUnterminatedQuote, Name: parse.UnterminatedQuote.String(), Text: "a quote never closed", parse: parse.UnterminatedQuote},
	{Counter: PairsLongName, Name: parse.LongName.String(), Text: "name over 255 bytes", parse: parse.LongName},
}

// Refusals are the kinds of requests refused (answered 401, 413, 415 or
// 503), named as their counters; Text says what each was answered.
var Refusals = []Reason{
	{Counter: Unauthorized, Name: Unauthorized.String(), Text: "401 unauthorized (no or wrong credentials)"},
	{Counter: TooLarge, Name: TooLarge.String(), Text: "413 too large"},
	{Counter: Unsupported, Name: Unsupported.String(), Text: "415 unsupported Content-Type or Content-Encoding"},
	{Counter: Busy, Name: Busy.String(), Text: "503 busy (memory for bodies full)"},
	{Counter: Unavailable, Name: Unavailable.String(), Text: "503 unavailable (database, or too many unknown ids)"},
	{Counter: SlowBody, Name: SlowBody.String(), Text: "503 body below the minimum rate"},
}

// RefusalCounters are the counters of Refusals.
var RefusalCounters = func() []Counter {
	cs := make([]Counter, len(Refusals))
	for i, r := range Refusals {
		cs[i] = r.Counter
	}
	return cs
}()

// ReasonText returns what the pages say the reason named name among
// reasons means; "" if it has no text or is not among them.
func ReasonText(reasons []Reason, name string) string {
	for _, r := range reasons {
		if r.Name == name {
			return r.Text
		}
	}
	return ""
}

// Rejected returns the frames and pairs of a snapshot rejected, by reason
// name (FrameRejects, PairRejects), leaving out those that are zero.
func (s Snapshot) Rejected() map[string]uint64 {
	out := map[string]uint64{}
	for _, rs := range [][]Reason{FrameRejects, PairRejects} {
		for _, r := range rs {
			if s[r.Counter] > 0 {
				out[r.Name] = s[r.Counter]
			}
		}
	}
	return out
}

// AddPairRejects adds a parser's rejected pairs to the counters, by reason
// and in all (PairsRejected). The parser's BadHeader rejects are frames:
// the drain counts those as it reads them (RejectedBadHeader).
func (d *Counters) AddPairRejects(rj *parse.Rejects) {
	var total uint64
	for _, r := range PairRejects {
		n := rj[r.parse]
		d.Add(r.Counter, n)
		total += n
	}
	d.Add(PairsRejected, total)
}
