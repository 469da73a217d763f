package outlet

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Attribute is one of the user's own attributes of a drain's series
// (OTEL_RESOURCE_ATTRIBUTES, drains add|set --attribute K=V): an OTLP
// resource attribute, and a remote-write label named PromLabelName(Key).
type Attribute struct {
	Key, Value string
}

// Limits on attributes.
const (
	MaxAttributes          = 20   // per drain
	MaxAttributeKeyBytes   = 255  // a key
	MaxAttributeValueBytes = 1024 // a value
)

// reservedLabels are the remote-write labels drainmeter sets itself: an
// attribute that would become one of them is refused (it would override
// or shadow the series' identity).
var reservedLabels = map[string]bool{
	"__name__": true, "job": true, "source": true, "route": true, "drainmeter_rollup": true,
	"quantile": true, "le": true,
}

// CheckAttribute says what is wrong with one attribute, if anything: an
// empty, long or unprintable key, a long or non-UTF-8 value, or a key
// that is (or becomes, as a label) one drainmeter sets itself.
func CheckAttribute(a Attribute) error {
	switch {
	case a.Key == "":
		return errors.New("an attribute needs a key (KEY=VALUE)")
	case len(a.Key) > MaxAttributeKeyBytes:
		return fmt.Errorf("attribute key %.40q…: longer than %d bytes", a.Key, MaxAttributeKeyBytes)
	case !printable(a.Key):
		return fmt.Errorf("attribute key %q: not printable UTF-8 without spaces", a.Key)
	case len(a.Value) > MaxAttributeValueBytes:
		return fmt.Errorf("attribute %s: its value is longer than %d bytes", a.Key, MaxAttributeValueBytes)
	case !utf8.ValidString(a.Value):
		return fmt.Errorf("attribute %s: its value is not valid UTF-8", a.Key)
	case a.Key == "service.name":
		return errors.New("attribute service.name: that is the drain's name (APP_NAME or OTEL_SERVICE_NAME; drains set --name)")
	}
	if l := PromLabelName(a.Key); reservedLabels[l] || strings.HasPrefix(l, "__") {
		return fmt.Errorf("attribute %s: the label %s is drainmeter's own (job, source, route, drainmeter_rollup, quantile, le, __*)", a.Key, l)
	}
	return nil
}

// CheckAttributes checks a drain's attributes: each (CheckAttribute), at
// most MaxAttributes, and no two with one label name.
func CheckAttributes(as []Attribute) error {
	if len(as) > MaxAttributes {
		return fmt.Errorf("%d attributes: at most %d", len(as), MaxAttributes)
	}
	labels := map[string]string{}
	for _, a := range as {
		if err := CheckAttribute(a); err != nil {
			return err
		}
		l := PromLabelName(a.Key)
		if other, ok := labels[l]; ok {
			return fmt.Errorf("attributes %s and %s are the same label %s", other, a.Key, l)
		}
		labels[l] = a.Key
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return false
		}
	}
	return true
}

// ParseResourceAttributes reads OTEL_RESOURCE_ATTRIBUTES as the
// OpenTelemetry SDK does: key=value pairs separated by commas, spaces
// around them trimmed, values percent-decoded. A key given twice keeps its
// last value, in the place of its first.
func ParseResourceAttributes(s string) ([]Attribute, error) {
	var out []Attribute
	for field := range strings.SplitSeq(s, ",") {
		if strings.TrimSpace(field) == "" {
			continue
		}
		k, v, ok := strings.Cut(field, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, fmt.Errorf("%q is not key=value", strings.TrimSpace(field))
		}
		dv, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("the value of %s is not percent-encoded: %v", k, err)
		}
		out = SetAttribute(out, Attribute{k, dv})
	}
	return out, nil
}

// SetAttribute returns as with a's key set to a's value: replaced in its
// place, or appended.
func SetAttribute(as []Attribute, a Attribute) []Attribute {
	for i := range as {
		if as[i].Key == a.Key {
			as[i].Value = a.Value
			return as
		}
	}
	return append(as, a)
}
