package rollup

import (
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/drainmeter/drainmeter/parse"
)

// AppendLogfmt appends one logfmt line (with a newline) describing a closed
// series:
//
//	at=rollup drain=D minute=2024-05-01T12:34:00Z kind=measure name=N source=S unit=U count=3 sum=12 min=1 max=7 sum_squares=54 p50=4 p95=7 p99=7
//	at=rollup drain=D minute=… kind=count name=N source=S value=42
//
// source and unit are left out when empty; dimensions follow the source
// (route="GET /users/:id"); count, sample and unique report value= (the
// sum, the last value, the distinct count).
func AppendLogfmt(dst []byte, drain string, minute int64, s *Summary, percentiles []float64) []byte {
	dst = append(dst, "at=rollup drain="...)
	dst = AppendValue(dst, drain)
	dst = append(dst, " minute="...)
	dst = time.Unix(minute, 0).UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, " kind="...)
	dst = append(dst, s.Kind.String()...)
	dst = append(dst, " name="...)
	dst = AppendValue(dst, s.Name)
	if s.Source != "" {
		dst = append(dst, " source="...)
		dst = AppendValue(dst, s.Source)
	}
	EachDim(s.Dims, func(k, v string) {
		dst = AppendValue(append(append(append(dst, ' '), k...), '='), v)
	})
	if s.Unit != "" {
		dst = append(dst, " unit="...)
		dst = AppendValue(dst, s.Unit)
	}
	if s.Kind == parse.Measure {
		dst = strconv.AppendInt(append(dst, " count="...), s.Count, 10)
		dst = AppendFloat(append(dst, " sum="...), s.Sum)
		dst = AppendFloat(append(dst, " min="...), s.Min)
		dst = AppendFloat(append(dst, " max="...), s.Max)
		dst = AppendFloat(append(dst, " sum_squares="...), s.SumSq)
		for i, p := range percentiles {
			if i < len(s.Percentiles) {
				dst = append(dst, " p"...)
				dst = strconv.AppendFloat(dst, p, 'f', -1, 64)
				dst = AppendFloat(append(dst, '='), s.Percentiles[i])
			}
		}
	} else {
		dst = AppendFloat(append(dst, " value="...), s.Value)
	}
	return append(dst, '\n')
}

// AppendEventLogfmt appends one logfmt line (with a newline) describing an
// event of a closed minute:
//
//	at=event drain=D minute=2024-05-01T14:02:00Z name=heroku.deploys time=2024-05-01T14:02:07.5Z title="Release v74 created"
func AppendEventLogfmt(dst []byte, drain string, minute int64, e *Event) []byte {
	dst = append(dst, "at=event drain="...)
	dst = AppendValue(dst, drain)
	dst = append(dst, " minute="...)
	dst = time.Unix(minute, 0).UTC().AppendFormat(dst, time.RFC3339)
	dst = append(dst, " name="...)
	dst = AppendValue(dst, e.Name)
	dst = append(dst, " time="...)
	dst = time.Unix(0, e.Time).UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, " title="...)
	dst = AppendValue(dst, e.Title)
	return append(dst, '\n')
}

// AppendFloat formats v compactly: plain digits for everyday magnitudes,
// an exponent for very large or very small ones.
func AppendFloat(dst []byte, v float64) []byte {
	if a := math.Abs(v); a == 0 || (a >= 1e-4 && a < 1e15) {
		return strconv.AppendFloat(dst, v, 'f', -1, 64)
	}
	return strconv.AppendFloat(dst, v, 'g', -1, 64)
}

// AppendValue appends s as a logfmt value, quoted only when it must be.
func AppendValue(dst []byte, s string) []byte {
	if s == "" || strings.ContainsAny(s, " =\"\\") || strings.ContainsFunc(s, func(r rune) bool { return r < ' ' }) {
		return strconv.AppendQuote(dst, s)
	}
	return append(dst, s...)
}
