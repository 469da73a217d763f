package parse

import (
	"bytes"
	"encoding/json"
	"time"
)

type jsonMeasurement struct {
	Kind   string  `json:"kind"`
	Name   string  `json:"name"`
	Value  float64 `json:"value"`
	Member string  `json:"member,omitempty"`
	Unit   string  `json:"unit,omitempty"`
	Source string  `json:"source,omitempty"`
	Time   string  `json:"time"`
}

// AppendJSON appends m as one line of JSON (without a newline):
// {"kind":…,"name":…,"value":…,"member":…,"unit":…,"source":…,"time":…},
// member only for unique, unit and source only when not empty, time in UTC
// RFC 3339 with as many fractional digits as needed.
func (m *Measurement) AppendJSON(dst []byte) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(jsonMeasurement{ // cannot fail: strings and a finite float
		Kind:   m.Kind.String(),
		Name:   string(m.Name),
		Value:  m.Value,
		Member: string(m.Member),
		Unit:   string(m.Unit),
		Source: string(m.Source),
		Time:   m.Time.UTC().Format(time.RFC3339Nano),
	})
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
