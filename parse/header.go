package parse

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"time"
)

// Header is a frame's syslog header. Its byte slices alias the frame.
type Header struct {
	Time   time.Time // zero when the timestamp is "-" or unparseable
	App    []byte    // APP-NAME: "app" for dynos, "heroku" for the platform
	ProcID []byte    // PROCID: "web.1", "router", "heroku-postgres", …
	Msg    []byte    // MSG, structured data and one trailing LF removed

	// BadTime is set when the timestamp is neither "-" (syslog's "none")
	// nor one ParseTime reads: the frame is stamped with its receive time,
	// and counted (Parser.BadTimestamps).
	BadTime bool
}

// parseHeader splits a syslog frame (without its octet count) into its header
// and message. It reports false when the frame is not <PRI>VERSION followed
// by five space-separated header fields.
func parseHeader(frame []byte, tc *timeCache) (Header, bool) {
	var h Header
	b := frame
	// <PRI>VERSION
	if len(b) < 4 || b[0] != '<' {
		return h, false
	}
	i := 1
	for i < len(b) && i <= 4 && isDigit(b[i]) {
		i++
	}
	if i == 1 || i >= len(b) || b[i] != '>' {
		return h, false
	}
	i++
	j := i
	for j < len(b) && isDigit(b[j]) {
		j++
	}
	if j == i || j >= len(b) || b[j] != ' ' {
		return h, false
	}
	b = b[j+1:]

	var ts, app, procID []byte
	var ok bool
	if ts, b, ok = field(b); !ok {
		return h, false
	}
	if _, b, ok = field(b); !ok { // HOSTNAME
		return h, false
	}
	if app, b, ok = field(b); !ok {
		return h, false
	}
	if procID, b, ok = field(b); !ok {
		return h, false
	}
	// MSGID: the last header field; MSG may be absent.
	sp := spaceIndex(b)
	var msg []byte
	if sp < 0 {
		if len(trimLF(b)) == 0 {
			return h, false
		}
	} else {
		if sp == 0 {
			return h, false
		}
		msg = b[sp+1:]
	}
	msg = trimLF(msg)
	msg = skipStructuredData(msg)

	if t, ok := parseTime(ts, tc); ok {
		h.Time = t
	} else if len(ts) != 1 || ts[0] != '-' {
		h.BadTime = true
	}
	h.App, h.ProcID, h.Msg = app, procID, msg
	return h, true
}

// field returns the run up to the next space and the rest after it.
func field(b []byte) (f, rest []byte, ok bool) {
	sp := spaceIndex(b)
	if sp <= 0 {
		return nil, nil, false
	}
	return b[:sp], b[sp+1:], true
}

// spaceIndex is bytes.IndexByte(b, ' '), but looks at the first 8 bytes
// in one word first (see swarLo): most header fields are short ("host",
// "heroku", "router", "-").
func spaceIndex(b []byte) int {
	if len(b) >= 8 {
		x := binary.LittleEndian.Uint64(b) ^ (' ' * swarLo)
		if m := (x - swarLo) &^ x & swarHi; m != 0 {
			return bits.TrailingZeros64(m) >> 3
		}
	}
	return bytes.IndexByte(b, ' ')
}

func trimLF(b []byte) []byte {
	if n := len(b); n > 0 && b[n-1] == '\n' {
		b = b[:n-1]
		if n := len(b); n > 0 && b[n-1] == '\r' {
			b = b[:n-1]
		}
	}
	return b
}

// skipStructuredData drops a leading "-" (NILVALUE) or one leading "[...]"
// element, and the space after it.
func skipStructuredData(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	switch b[0] {
	case '-':
		if len(b) == 1 {
			return b[1:]
		}
		if b[1] == ' ' {
			return b[2:]
		}
	case '[':
		inQuote := false
		for i := 1; i < len(b); i++ {
			switch c := b[i]; {
			case c == '\\' && inQuote:
				i++
			case c == '"':
				inQuote = !inQuote
			case c == ']' && !inQuote:
				rest := b[i+1:]
				if len(rest) > 0 && rest[0] == ' ' {
					rest = rest[1:]
				}
				return rest
			}
		}
	}
	return b
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// ParseTime parses an RFC 3339 timestamp (any offset, 0–9 fractional digits)
// without allocating. It returns the time in UTC.
func ParseTime(b []byte) (time.Time, bool) { return parseTime(b, nil) }

// timeCache remembers the last timestamp's date and time to the second:
// the lines of a batch mostly share it, and then only the fraction and
// the offset are left to read.
type timeCache struct {
	prefix [19]byte
	secs   int64 // prefix read as UTC, in unix seconds
	ok     bool
}

func parseTime(b []byte, tc *timeCache) (time.Time, bool) {
	// 2006-01-02T15:04:05[.frac](Z|+07:00)
	if len(b) < 20 || b[4] != '-' || b[7] != '-' || (b[10] != 'T' && b[10] != 't' && b[10] != ' ') ||
		b[13] != ':' || b[16] != ':' {
		return time.Time{}, false
	}
	var secs int64
	if tc != nil && tc.ok && string(b[:19]) == string(tc.prefix[:]) {
		secs = tc.secs
	} else {
		year, ok1 := atoiN(b[0:4])
		month, ok2 := atoiN(b[5:7])
		day, ok3 := atoiN(b[8:10])
		hour, ok4 := atoiN(b[11:13])
		minute, ok5 := atoiN(b[14:16])
		sec, ok6 := atoiN(b[17:19])
		if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) ||
			month < 1 || month > 12 || day < 1 || day > daysIn(month, year) ||
			hour > 23 || minute > 59 || sec > 60 {
			return time.Time{}, false
		}
		if sec == 60 { // a leap second: the last instant of the minute
			sec = 59
		}
		secs = daysFromCivil(year, month, day)*86400 + int64(hour*3600+minute*60+sec)
		if tc != nil {
			copy(tc.prefix[:], b[:19])
			tc.secs, tc.ok = secs, true
		}
	}
	rest := b[19:]
	nsec := 0
	if len(rest) > 0 && rest[0] == '.' {
		n := 1
		for n < len(rest) && isDigit(rest[n]) {
			if n > 9 {
				return time.Time{}, false
			}
			nsec = nsec*10 + int(rest[n]-'0')
			n++
		}
		if n == 1 {
			return time.Time{}, false
		}
		nsec *= nsecScale[n-2] // n-1 digits
		rest = rest[n:]
	}
	offset := 0
	switch {
	case len(rest) == 1 && (rest[0] == 'Z' || rest[0] == 'z'):
	case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
		oh, ok1 := atoiN(rest[1:3])
		om, ok2 := atoiN(rest[4:6])
		if !ok1 || !ok2 || oh > 23 || om > 59 {
			return time.Time{}, false
		}
		offset = oh*3600 + om*60
		if rest[0] == '-' {
			offset = -offset
		}
	default:
		return time.Time{}, false
	}
	return time.Unix(secs-int64(offset), int64(nsec)).UTC(), true
}

// nsecScale[d-1] turns d fractional digits into nanoseconds.
var nsecScale = [9]int{1e8, 1e7, 1e6, 1e5, 1e4, 1e3, 1e2, 1e1, 1}

func atoiN(b []byte) (int, bool) {
	n := 0
	for _, c := range b {
		if !isDigit(c) {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

func daysIn(month, year int) int {
	switch month {
	case 2:
		if year%4 == 0 && (year%100 != 0 || year%400 == 0) {
			return 29
		}
		return 28
	case 4, 6, 9, 11:
		return 30
	}
	return 31
}

// daysFromCivil is the number of days from 1970-01-01 to y-m-d in the
// proleptic Gregorian calendar (Howard Hinnant's algorithm).
func daysFromCivil(y, m, d int) int64 {
	if m <= 2 {
		y--
	}
	era := y / 400
	yoe := y - era*400
	mp := (m + 9) % 12
	doy := (153*mp+2)/5 + d - 1
	doe := yoe*365 + yoe/4 - yoe/100 + doy
	return int64(era)*146097 + int64(doe) - 719468
}
