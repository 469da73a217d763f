package parse

import (
	"bytes"
	"encoding/json"
	"time"
)

type jsonMeasurement struct {
	Kind   string            `json:"kind"`
	Name   string            `json:"name"`
	Value  float64           `json:"value"`
	Member string            `json:"member,omitempty"`
	Title  string            `json:"title,omitempty"`
	Unit   string            `json:"unit,omitempty"`
	Source string            `json:"source,omitempty"`
	Dims   map[string]string `json:"dims,omitempty"`
	Time   string            `json:"time"`
}

// AppendJSON appends m as one line of JSON (without a newline):
// {"kind":…,"name":…,"value":…,"member":…,"title":…,"unit":…,"source":…,"dims":{…},"time":…},
// member only for unique, title only for an event, unit, source and dims
// only when not empty, time in UTC RFC 3339 with as many fractional digits
// as needed.
func (m *Measurement) AppendJSON(dst []byte) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	j := jsonMeasurement{
		Kind:   m.Kind.String(),
		Name:   string(m.Name),
		Value:  m.Value,
		Unit:   string(m.Unit),
		Source: string(m.Source),
		Time:   m.Time.UTC().Format(time.RFC3339Nano),
	}
	if m.Kind == Event {
		j.Title = string(m.Member)
	} else {
		j.Member = string(m.Member)
	}
	if len(m.Dims) > 0 {
		j.Dims = map[string]string{}
		EachDim(string(m.Dims), func(k, v string) { j.Dims[k] = v })
	}
	_ = enc.Encode(j) // cannot fail: strings and a finite float
	return append(dst, bytes.TrimSuffix(buf.Bytes(), []byte("\n"))...)
}
