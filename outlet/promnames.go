package outlet

import "strings"

// PromMetricName makes s a valid Prometheus metric name,
// [a-zA-Z_:][a-zA-Z0-9_:]*: every other character becomes _, and a leading
// digit gets a _ prefix (db.latency → db_latency).
func PromMetricName(s string) string { return promSanitize(s, true) }

// PromLabelName makes s a valid Prometheus label name, [a-zA-Z_][a-zA-Z0-9_]*,
// the same way (deployment.environment.name → deployment_environment_name).
func PromLabelName(s string) string { return promSanitize(s, false) }

func promSanitize(s string, colon bool) string {
	if s == "" {
		return "_"
	}
	var b strings.Builder
	b.Grow(len(s) + 1)
	if s[0] >= '0' && s[0] <= '9' {
		b.WriteByte('_')
	}
	for _, c := range s { // an invalid UTF-8 byte is one RuneError: one _
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '_', colon && c == ':':
			b.WriteRune(c)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}
