package logsample

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// TestSampled: one line a second per message and reason, carrying the
// count of events since the previous line.
func TestSampled(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(1000, 0)
	l := New(slog.New(slog.NewTextHandler(&buf, nil)), func() time.Time { return now })
	for i := range 30 {
		now = time.Unix(1000, 0).Add(time.Duration(i) * 100 * time.Millisecond) // 3 s
		l.Sampled(slog.LevelInfo, "refused", "bad credentials", "user", "u")
		l.Sampled(slog.LevelInfo, "refused", "too large")
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 6 {
		t.Fatalf("%d lines:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[0], "count=1") || !strings.Contains(lines[2], "reason=\"bad credentials\" count=10 user=u") {
		t.Errorf("lines:\n%s", buf.String())
	}
}
