package drain

import (
	"strings"
	"time"
	"unicode/utf8"

	"github.com/drainmeter/drainmeter/parse"
)

// Refusal is one refused pair as the status pages show it: its metric
// token only (measure#db.latency=abc), never the rest of the line, which
// may carry personal data.
type Refusal struct {
	Reason string // the parse reason: bad_value, empty_name, …
	Token  string // the pair's key and (cut) value
	Name   string // the metric name in the key, if any
}

// Refusals takes the refused pairs of each counted batch (at most
// maxRefusalsPerBatch of them): not called for a batch without any.
type Refusals interface {
	Refused(drain string, at time.Time, rs []Refusal)
}

const (
	maxRefusalsPerBatch = 8
	maxTokenKey         = 96 // bytes of a token's key kept
	maxTokenValue       = 24 // bytes of its value kept
)

// refusalOf returns what the status pages may keep of a refused text: the
// metric token of a pair (its key and the start of its value) with the
// series name p would have given it, or the start of a name for long_name.
// Anything else (a whole frame, a message, a bare value) is not kept: ok is
// false.
func refusalOf(p *parse.Parser, r parse.Reason, text []byte) (Refusal, bool) {
	if r == parse.BadHeader {
		return Refusal{}, false
	}
	word := text
	for i, c := range text {
		if c == ' ' || c == '\t' || c == '\n' || c == '\r' {
			word = text[:i]
			break
		}
	}
	if r == parse.LongName {
		return Refusal{Reason: r.String(), Token: printable(word, maxTokenKey)}, len(word) > 0
	}
	key, val, hasVal := strings.Cut(string(word), "=")
	name, ok := p.RefusedName([]byte(key))
	if !ok {
		return Refusal{}, false
	}
	tok := printable([]byte(key), maxTokenKey)
	if hasVal {
		tok += "=" + printable([]byte(val), maxTokenValue)
	}
	return Refusal{Reason: r.String(), Token: tok, Name: printable([]byte(name), maxTokenKey)}, true
}

// printable returns b cut to max bytes (on a rune boundary, with … when
// cut) with control characters and invalid UTF-8 replaced.
func printable(b []byte, max int) string {
	var sb strings.Builder
	for len(b) > 0 {
		r, n := utf8.DecodeRune(b)
		if sb.Len()+n > max {
			sb.WriteString("…")
			break
		}
		switch {
		case r == utf8.RuneError && n <= 1, r < 0x20, r == 0x7f:
			sb.WriteByte('?')
		default:
			sb.Write(b[:n])
		}
		b = b[n:]
	}
	return sb.String()
}

// onReject is the parser's OnReject: it keeps the first few refused
// pairs of the request (the reject path only; nothing per accepted line).
func (st *reqState) onReject(r parse.Reason, text []byte) {
	if len(st.rejects) >= maxRefusalsPerBatch {
		return
	}
	if rf, ok := refusalOf(st.p, r, text); ok {
		st.rejects = append(st.rejects, rf)
	}
}
