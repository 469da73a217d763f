package parse

import (
	"bytes"
	"time"
	"unicode/utf8"
)

// The Platform API's audit lines (APP-NAME "app", PROCID "api"), as logplex
// delivers them (README, "Deploy markers"):
//
//	Release v138 created by user foo@bar        count heroku.releases, sample heroku.release.version 138, event
//	Deploy d706b4a by user ned@x                count heroku.deploys, event
//	Rollback to v73 by user ned@x               count heroku.rollbacks, event
//	Scaled to mailer@3:Performance-L web@5:Standard-2X by user someuser@x
//	Scale to web=4, worker=2 by user kate@x     sample heroku.formation.<type> N, source <type>
//	Set maintenance mode on by user kate@x      sample heroku.maintenance 1 (off: 0)
//
// The events are titled with the line's text up to " by user" (the user's
// e-mail is never part of a name, source, label or title) and named
// heroku.deploys: the annotation stream they go to.

var (
	nameReleases       = []byte("heroku.releases")
	nameReleaseVersion = []byte("heroku.release.version")
	nameDeploys        = []byte("heroku.deploys")
	nameRollbacks      = []byte("heroku.rollbacks")
	nameMaintenance    = []byte("heroku.maintenance")
	nameEvents         = nameDeploys // the annotation stream
)

// MaxTitleBytes bounds an event's title.
const MaxTitleBytes = 255

// apiLine reads one Platform API line.
func (p *Parser) apiLine(emit func(*Measurement), msg []byte, t time.Time) {
	switch {
	case bytes.HasPrefix(msg, []byte("Release v")):
		n, rest, ok := number(msg[len("Release v"):], 9)
		if !ok || !bytes.HasPrefix(rest, []byte(" created")) {
			return
		}
		p.emitWith(emit, Count, nameReleases, 1, nil, nil, t, p.noSrc, nil)
		p.emitWith(emit, Sample, nameReleaseVersion, float64(n), nil, nil, t, p.noSrc, nil)
		p.event(emit, msg, t)
	case bytes.HasPrefix(msg, []byte("Deploy ")):
		if len(msg) == len("Deploy ") || msg[len("Deploy ")] == ' ' {
			return
		}
		p.emitWith(emit, Count, nameDeploys, 1, nil, nil, t, p.noSrc, nil)
		p.event(emit, msg, t)
	case bytes.HasPrefix(msg, []byte("Rollback to v")):
		if _, _, ok := number(msg[len("Rollback to v"):], 9); !ok {
			return
		}
		p.emitWith(emit, Count, nameRollbacks, 1, nil, nil, t, p.noSrc, nil)
		p.event(emit, msg, t)
	case bytes.HasPrefix(msg, []byte("Scaled to ")):
		// type@N:Size, space-separated
		for f := range bytes.FieldsSeq(byUser(msg[len("Scaled to "):])) {
			typ, rest, ok := bytes.Cut(f, []byte("@"))
			if !ok {
				continue
			}
			if n, after, ok := number(rest, 6); ok && (len(after) == 0 || after[0] == ':') {
				p.formation(emit, typ, n, t)
			}
		}
	case bytes.HasPrefix(msg, []byte("Scale to ")):
		// type=N, comma-separated
		for f := range bytes.SplitSeq(byUser(msg[len("Scale to "):]), []byte(",")) {
			typ, rest, ok := bytes.Cut(bytes.TrimSpace(f), []byte("="))
			if !ok {
				continue
			}
			if n, after, ok := number(rest, 6); ok && len(after) == 0 {
				p.formation(emit, typ, n, t)
			}
		}
	case bytes.HasPrefix(msg, []byte("Set maintenance mode ")):
		switch rest := msg[len("Set maintenance mode "):]; {
		case bytes.HasPrefix(rest, []byte("on")) && (len(rest) == 2 || rest[2] == ' '):
			p.emitWith(emit, Sample, nameMaintenance, 1, nil, nil, t, p.noSrc, nil)
		case bytes.HasPrefix(rest, []byte("off")) && (len(rest) == 3 || rest[3] == ' '):
			p.emitWith(emit, Sample, nameMaintenance, 0, nil, nil, t, p.noSrc, nil)
		}
	}
}

// formation emits sample heroku.formation.<type> = n with source <type>.
func (p *Parser) formation(emit func(*Measurement), typ []byte, n int64, t time.Time) {
	if len(typ) == 0 || len(typ) > 64 || !isLetter(typ[0]) {
		return
	}
	for _, c := range typ {
		if !isLetter(c) && !isDigit(c) && c != '_' && c != '-' {
			return
		}
	}
	name := append(append(p.member[:0], "heroku.formation."...), typ...)
	p.member = name
	p.auxSrc = p.prefixSource(p.auxSrc[:0], typ)
	p.emitWith(emit, Sample, name, float64(n), nil, nil, t, p.auxSrc, nil)
}

// event emits an Event titled with the line's text up to " by user".
func (p *Parser) event(emit func(*Measurement), msg []byte, t time.Time) {
	title := bytes.TrimSpace(byUser(msg))
	if at := bytes.IndexByte(title, '@'); at >= 0 { // never an e-mail, however the line is worded
		title = bytes.TrimSpace(title[:bytes.LastIndexByte(title[:at], ' ')+1])
	}
	if len(title) > MaxTitleBytes {
		title = title[:MaxTitleBytes]
		for len(title) > 0 && !utf8.Valid(title) {
			title = title[:len(title)-1]
		}
	}
	if len(title) == 0 {
		return
	}
	p.emitWith(emit, Event, nameEvents, 1, nil, title, t, nil, nil)
}

// byUser returns msg up to " by user" (or, failing that, " by ").
func byUser(msg []byte) []byte {
	if i := bytes.Index(msg, []byte(" by user")); i >= 0 {
		return msg[:i]
	}
	if i := bytes.Index(msg, []byte(" by ")); i >= 0 {
		return msg[:i]
	}
	return msg
}

// number reads 1 to max decimal digits at the start of b.
func number(b []byte, max int) (int64, []byte, bool) {
	var n int64
	i := 0
	for i < len(b) && isDigit(b[i]) {
		if i == max {
			return 0, nil, false
		}
		n = n*10 + int64(b[i]-'0')
		i++
	}
	return n, b[i:], i > 0
}

// Losses emits what a sender reported it lost in a batch's headers
// (log-shuttle's Logshuttle-Drops and Logshuttle-Lost): counts
// logplex.dropped and logplex.lost at t, added to Dropped and Lost, exactly
// as its L12 and L13 lines are. Call it after the batch's frames: losses
// that the batch's own L12/L13 lines reported already (log-shuttle writes
// both for the same loss) are not counted twice.
func (p *Parser) Losses(dropped, lost uint64, t time.Time, emit func(*Measurement)) {
	if dropped > p.ShuttleDropped {
		n := dropped - p.ShuttleDropped
		p.Dropped += n
		p.ShuttleDropped = dropped
		p.emitWith(emit, Count, nameLogplexDropped, float64(n), nil, nil, t, p.noSrc, nil)
	}
	if lost > p.ShuttleLost {
		n := lost - p.ShuttleLost
		p.Lost += n
		p.ShuttleLost = lost
		p.emitWith(emit, Count, nameLogplexLost, float64(n), nil, nil, t, p.noSrc, nil)
	}
}
