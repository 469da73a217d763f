package status

import (
	"cmp"
	"fmt"
	"html/template"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/stats"
)

// Minutes is how many minutes of lines per minute the pages show.
const Minutes = 60

// quietAfter is how long without a batch before a drain shows as quiet.
const quietAfter = 5 * time.Minute

// clean returns a copy of snap for showing: only drain id when id is not
// empty (whatever the Source returned), lists never null, exactly Minutes
// lines per minute (oldest first), credentials removed from outlet targets
// and errors, and an add command with its secret elided for each drain
// still waiting for its first batch (built by addCommand when the Source
// gave none).
func clean(snap *Snapshot, id string, addCommand func(*Report) string) *Snapshot {
	out := *snap
	out.Drains = make([]Report, 0, len(snap.Drains))
	for _, d := range snap.Drains {
		if id != "" && d.ID != id {
			continue
		}
		d.Apps = nonNil(slices.Clone(d.Apps))
		d.Attributes = nonNil(slices.Clone(d.Attributes))
		rejected := make(map[string]uint64, len(d.Rejected))
		for k, v := range d.Rejected {
			rejected[k] = v
		}
		d.Rejected = rejected
		refused := make(map[string]uint64, len(d.Refused))
		for k, v := range d.Refused {
			refused[k] = v
		}
		d.Refused = refused
		d.LinesPerMinute = lastMinutes(d.LinesPerMinute)
		outlets := make([]Outlet, len(d.Outlets))
		for i, o := range d.Outlets {
			o.Target = redactTarget(o.Target)
			o.LastError = redactText(o.LastError)
			outlets[i] = o
		}
		d.Outlets = outlets
		switch {
		case d.AddCommand != "":
			d.AddCommand = elideSecrets(d.AddCommand)
		case d.LastBatchAt == nil:
			d.AddCommand = addCommand(&d)
		}
		out.Drains = append(out.Drains, d)
	}
	if id != "" {
		out.Unknown, out.Connections = nil, nil // the status page's only
	}
	return &out
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// lastMinutes returns exactly Minutes counts, oldest first: the last ones
// of v, after zeros if v is short.
func lastMinutes(v []uint64) []uint64 {
	out := make([]uint64, Minutes)
	if len(v) > Minutes {
		v = v[len(v)-Minutes:]
	}
	copy(out[Minutes-len(v):], v)
	return out
}

// addCommand returns the builder of a drain's `heroku drains:add` line:
// the drain URL on this app's URL (or the request's host), its secret
// elided. The built-in drain's user part is the sending app's name and
// its password read from this app's DRAIN_SECRET by the shell.
func (h *handler) addCommand(host string) func(*Report) string {
	base := cleanBaseURL(h.cfg.BaseURL)
	if base == "" {
		if !hostRE.MatchString(host) {
			host = "HOST"
		}
		base = "https://" + host
	}
	scheme, rest, _ := strings.Cut(base, "://")
	return func(d *Report) string {
		app := d.Name
		if !appNameRE.MatchString(app) || d.ID == BuiltinDrainID && app == BuiltinDrainName {
			app = "APP" // the app to add the drain to: the user's, unknown yet
		}
		if d.ID == BuiltinDrainID {
			return fmt.Sprintf(`heroku drains:add "%s://%s:$(heroku config:get DRAIN_SECRET -a %s)@%s/logs" -a %s`,
				scheme, app, h.thisApp(), rest, app)
		}
		return fmt.Sprintf(`heroku drains:add '%s://%s:%s@%s/logs' -a %s`,
			scheme, url.User(d.ID).String(), SecretPlaceholder, rest, app)
	}
}

// The views are what the templates show, formatted.

type messageView struct {
	Title      string
	CSS        template.CSS
	Version    string
	Message    string
	Status     int
	SetCommand string // the 403 of a closed page: how to open it
}

type pageView struct {
	Title     string
	CSS       template.CSS
	Open      bool   // the open-mode banner
	Owner     string // a drain's page: its id
	Version   string
	Store     string
	Database  string
	Dedup     string
	Window    string
	Dynos     int
	Generated timeView
	JSONPath  string
	Drains    []drainView

	// Partials this dyno holds for Postgres, and the oldest minute it could
	// not write (postgres only).
	PartialsQueued int
	NotRecorded    timeView
	// The status page's only: refusals of credentials that name no drain,
	// and this process's connections.
	Unknown     *refusalsView
	Connections *connsView
}

type refusalsView struct {
	Refused     []reasonView
	LastRefused timeView
}

type connsView struct {
	Max, UntrustedMax, Open, Trusted string
	IdleClosed, UntrustedClosed      string
	Refused                          string
	Last                             timeView
}

type timeView struct {
	Set bool
	UTC string // 2006-01-02 15:04:05 UTC
	ISO string // RFC 3339
	Ago string // 3 minutes ago
}

type drainView struct {
	ID          string
	Name        string
	Link        string // its own page, from the status page
	Explore     string // its metrics explorer
	Apps        []string
	Attributes  []string
	State       string // receiving, quiet, waiting
	LastBatch   timeView
	AddCommand  string
	Chart       chartView
	Counters    []counterView
	Frames      string
	Rejected    []reasonView
	Refused     []reasonView // requests refused, by kind
	LastRefused timeView
	Outlets     []outletView
}

type counterView struct {
	Key   string // the JSON key
	Label string
	Value string
	Warn  bool // not zero, and worth a look
}

type reasonView struct {
	Reason string
	Key    string // the JSON key (refusals)
	Count  string
	n      uint64
}

type outletView struct {
	Index          int
	Kind           string
	Target         string
	Config         string
	State          string
	StateLabel     string
	LastPost       timeView
	MinutesWaiting int
	LastError      string
	LastErrorAt    timeView
	Posted         string
	Rejected       string
	Dropped        string
	Uncertain      string // post_uncertain
	UncertainWarn  bool
	Fix            string   // while paused: what to do
	NextAttempt    timeView // while retrying, uncertain or paused
}

type chartView struct {
	ID      string
	Title   string // what the chart shows, in words
	Bars    []barView
	Max     string
	Last    string // the last full minute
	Current string // the current minute, so far
	Total   string
	Empty   bool // no lines at all
	Height  int
	Width   int
}

type barView struct {
	X, Y, W, H string
	Lines      uint64
	Label      string
	Current    bool
	Unrecorded bool // its minute's figures are not yet written to the database
}

// pageView shows a cleaned snapshot: the status page, or (owner set) the
// page of drain owner.
func (h *handler) pageView(snap *Snapshot, owner string) pageView {
	v := pageView{
		Title:     "drainmeter status",
		CSS:       h.css,
		Open:      h.open(),
		Owner:     owner,
		Version:   cmp.Or(snap.Version, h.cfg.Version),
		Store:     snap.Store,
		Database:  snap.Database,
		Dedup:     snap.Dedup,
		Window:    snap.Window,
		Dynos:     snap.Dynos,
		Generated: formatTime(time.Time{}, &snap.Now),
		JSONPath:  "status.json",
	}
	if owner != "" {
		v.JSONPath = owner + ".json"
	}
	v.PartialsQueued = snap.PartialsQueued
	v.NotRecorded = formatTime(snap.Now, snap.NotRecordedSince)
	if u := snap.Unknown; u != nil && len(u.Refused) > 0 {
		v.Unknown = &refusalsView{Refused: refusedView(u.Refused), LastRefused: formatTime(snap.Now, u.LastRefusedAt)}
	}
	if c := snap.Connections; c != nil {
		v.Connections = &connsView{Max: count(uint64(c.Max)), UntrustedMax: count(uint64(c.UntrustedMax)), Open: count(uint64(c.Open)),
			Trusted: count(uint64(c.Trusted)), IdleClosed: count(c.IdleClosed), UntrustedClosed: count(c.UntrustedClosed),
			Refused: count(c.Refused)}
		if !c.LastAt.IsZero() {
			v.Connections.Last = formatTime(snap.Now, &c.LastAt)
		}
	}
	for i := range snap.Drains {
		d := &snap.Drains[i]
		dv := newDrainView(d, snap.Now, owner == "")
		if snap.NotRecordedSince != nil {
			dv.Chart = unrecorded(dv.Chart, d, snap.Now, *snap.NotRecordedSince)
		}
		if h.cfg.Explorer != nil {
			dv.Explore = d.ID + "/metrics"
			if owner == "" {
				dv.Explore = "drains/" + dv.Explore
			}
		}
		if owner != "" {
			v.Title = d.Name + " · drainmeter"
		}
		v.Drains = append(v.Drains, dv)
	}
	return v
}

// formatTime shows t, and how long before now it was (unless now is zero).
func formatTime(now time.Time, t *time.Time) timeView {
	if t == nil || t.IsZero() {
		return timeView{}
	}
	v := timeView{Set: true, UTC: t.UTC().Format("2006-01-02 15:04:05 UTC"), ISO: t.UTC().Format(time.RFC3339)}
	if !now.IsZero() {
		v.Ago = ago(now.Sub(*t))
	}
	return v
}

// formatNext formats a time to come ("in 3 minutes").
func formatNext(now time.Time, t *time.Time) timeView {
	v := formatTime(time.Time{}, t)
	if v.Set && !now.IsZero() {
		switch d := t.Sub(now); {
		case d < time.Minute:
			v.Ago = "in less than a minute"
		case d < 2*time.Minute:
			v.Ago = "in 1 minute"
		default:
			v.Ago = "in " + strconv.Itoa(int(d/time.Minute)) + " minutes"
		}
	}
	return v
}

// ago says how long ago in words, to the minute.
func ago(d time.Duration) string {
	switch m := int(d / time.Minute); {
	case d < time.Minute:
		return "less than a minute ago"
	case m == 1:
		return "1 minute ago"
	case m < 120:
		return strconv.Itoa(m) + " minutes ago"
	case m < 48*60:
		return strconv.Itoa(m/60) + " hours ago"
	default:
		return strconv.Itoa(m/(24*60)) + " days ago"
	}
}

func newDrainView(d *Report, now time.Time, link bool) drainView {
	v := drainView{
		ID:         d.ID,
		Name:       cmp.Or(d.Name, d.ID),
		Apps:       d.Apps,
		Attributes: d.Attributes,
		LastBatch:  formatTime(now, d.LastBatchAt),
		Chart:      chart(d, now),
		Frames:     count(d.Frames),
	}
	if link {
		v.Link = "drains/" + d.ID
	}
	switch {
	case d.LastBatchAt == nil:
		v.State = "waiting"
		v.AddCommand = d.AddCommand
	case !now.IsZero() && now.Sub(*d.LastBatchAt) > quietAfter:
		v.State = "quiet"
	default:
		v.State = "receiving"
	}
	c := func(key, label string, n uint64, warn bool) {
		v.Counters = append(v.Counters, counterView{Key: key, Label: label, Value: count(n), Warn: warn && n > 0})
	}
	c("frames", "frames accepted", d.Frames, false)
	c("frames_rejected", "frames rejected", d.FramesRejected, true)
	c("duplicates", "duplicates", d.Duplicates, false)
	c("late", "late", d.Late, true)
	c("late_shifted", "late, posted in a later minute", d.LateShifted, false)
	c("future", "future", d.Future, true)
	c("overflow", "overflow", d.Overflow, true)
	c("kind_conflict", "kind conflict", d.KindConflict, true)
	c("logplex_dropped", "dropped by logplex (L10, L12)", d.LogplexDropped, true)
	c("logplex_lost", "lost by log-shuttle (L13)", d.LogplexLost, true)
	c("open_series", "open series", uint64(max(d.OpenSeries, 0)), false)
	if d.AsGauges > 0 {
		c("as_gauges", "measures sent as gauges (negative values, cumulative OTLP)", d.AsGauges, false)
	}
	if d.BadTimestamp > 0 {
		c("bad_timestamp", "unreadable timestamps (counted when received)", d.BadTimestamp, true)
	}
	if d.KeptOut > 0 {
		c("kept_out", "counts kept out of counters (negative minute totals)", d.KeptOut, true)
	}

	for reason, n := range d.Rejected {
		v.Rejected = append(v.Rejected, reasonView{Reason: reason, Count: count(n)})
	}
	slices.SortFunc(v.Rejected, func(a, b reasonView) int {
		return cmp.Or(cmp.Compare(d.Rejected[b.Reason], d.Rejected[a.Reason]), strings.Compare(a.Reason, b.Reason))
	})

	v.Refused = refusedView(d.Refused)
	v.LastRefused = formatTime(now, d.LastRefusedAt)

	for i, o := range d.Outlets {
		v.Outlets = append(v.Outlets, outletView{
			Index:          i,
			Kind:           o.Kind,
			Target:         o.Target,
			Config:         o.Config,
			State:          o.State,
			StateLabel:     stateLabel(o.State),
			LastPost:       formatTime(now, o.LastPostAt),
			MinutesWaiting: o.MinutesWaiting,
			LastError:      o.LastError,
			LastErrorAt:    formatTime(now, o.LastErrorAt),
			Posted:         count(o.Posted),
			Rejected:       count(o.Rejected),
			Dropped:        count(o.Dropped),
			Uncertain:      count(o.PostUncertain),
			UncertainWarn:  o.PostUncertain > 0,
			Fix:            o.Fix,
			NextAttempt:    formatNext(now, o.NextAttemptAt),
		})
	}
	return v
}

// refusedView lists refusals by kind, the most first.
func refusedView(m map[string]uint64) []reasonView {
	var out []reasonView
	for k, n := range m {
		if n > 0 {
			out = append(out, reasonView{Reason: cmp.Or(stats.ReasonText(stats.Refusals, k), k), Key: k, Count: count(n), n: n})
		}
	}
	slices.SortFunc(out, func(a, b reasonView) int { return cmp.Or(cmp.Compare(b.n, a.n), strings.Compare(a.Key, b.Key)) })
	return out
}

func stateLabel(s string) string {
	switch s {
	case "paused":
		return "paused, minutes kept"
	case "uncertain":
		return "no answer: may have arrived"
	case "giving_up":
		return "giving up"
	case "":
		return "unknown"
	}
	return s
}

// The chart's drawing box; the SVG stretches it to the page's width.
const (
	chartWidth  = 600
	chartHeight = 100
	barStep     = chartWidth / Minutes
)

func chart(d *Report, now time.Time) chartView {
	v := chartView{ID: "chart-" + d.ID, Width: chartWidth, Height: chartHeight}
	var peak, total uint64
	for _, n := range d.LinesPerMinute {
		peak = max(peak, n)
		total += n
	}
	last, current := d.LinesPerMinute[Minutes-2], d.LinesPerMinute[Minutes-1]
	v.Max, v.Last, v.Current, v.Total = count(peak), count(last), count(current), count(total)
	v.Empty = total == 0
	v.Title = fmt.Sprintf("Lines per minute over the last %d minutes: at most %s, %s in the last full minute, %s so far in this one.",
		Minutes, v.Max, v.Last, v.Current)
	start := now.Truncate(time.Minute)
	for i, n := range d.LinesPerMinute {
		h := 0.0
		if peak > 0 && n > 0 {
			h = max(float64(n)/float64(peak)*(chartHeight-4), 1)
		}
		b := barView{
			X:       fmtFloat(float64(i*barStep) + 1),
			Y:       fmtFloat(chartHeight - h),
			W:       fmtFloat(barStep - 2),
			H:       fmtFloat(h),
			Lines:   n,
			Current: i == Minutes-1,
		}
		minutesAgo := Minutes - 1 - i
		switch {
		case now.IsZero():
			b.Label = fmt.Sprintf("%d minutes ago: %s lines", minutesAgo, count(n))
		default:
			b.Label = fmt.Sprintf("%s UTC: %s lines", start.Add(-time.Duration(minutesAgo)*time.Minute).UTC().Format("15:04"), count(n))
		}
		if b.Current {
			b.Label += " (so far)"
		}
		v.Bars = append(v.Bars, b)
	}
	return v
}

// unrecorded marks the chart's minutes from since on as not yet recorded:
// the dyno could not write their counters, so a figure there is not the
// minute's (it is often 0), and says so rather than showing a number.
func unrecorded(v chartView, d *Report, now, since time.Time) chartView {
	start := now.Truncate(time.Minute)
	first := -1
	for i := range v.Bars {
		minute := start.Add(-time.Duration(Minutes-1-i) * time.Minute)
		if minute.Before(since.Truncate(time.Minute)) {
			continue
		}
		if first < 0 {
			first = i
		}
		b := &v.Bars[i]
		b.Unrecorded = true
		b.Label = minute.UTC().Format("15:04") + " UTC: not yet recorded"
	}
	if first < 0 {
		return v
	}
	const not = "not yet recorded"
	if first <= Minutes-2 {
		v.Last = not
	}
	v.Current = not
	v.Empty = false
	v.Title = fmt.Sprintf("Lines per minute over the last %d minutes: at most %s; from %s UTC on not yet recorded (the database refuses writes).",
		Minutes, v.Max, since.UTC().Format("15:04"))
	return v
}

// fmtFloat formats a coordinate to a tenth.
func fmtFloat(f float64) string { return strconv.FormatFloat(math.Round(f*10)/10, 'f', -1, 64) }

// count formats n with thin groups of thousands: 1,234,567.
func count(n uint64) string {
	s := strconv.FormatUint(n, 10)
	if len(s) <= 3 {
		return s
	}
	var b strings.Builder
	pre := len(s) % 3
	if pre > 0 {
		b.WriteString(s[:pre])
	}
	for i := pre; i < len(s); i += 3 {
		if b.Len() > 0 {
			b.WriteByte(',')
		}
		b.WriteString(s[i : i+3])
	}
	return b.String()
}
