package status

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test fixture: two drains, one active with a retrying outlet and
// rejected frames, one (the built-in drain) waiting for its first batch.

const (
	testAdmin   = "admin-password-for-tests"
	testVersion = "v1.2.3-test"
	activeID    = "d0123456789abcdef"
	activeName  = "shop"
	waitingName = "api-gateway"
	ownerSecret = "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a6978"
	retryError  = "remotewrite: post https://prom.example.com/api/v1/write: 503 Service Unavailable"
)

var testNow = time.Date(2026, 3, 14, 15, 9, 26, 0, time.UTC)

func ptr[T any](v T) *T { return &v }

// testLines is the active drain's lines per minute, oldest first: a wave,
// a quiet gap, and a partial current minute.
func testLines() []uint64 {
	v := make([]uint64, Minutes)
	for i := range v {
		v[i] = uint64(600 + 40*(i%7) + 10*i)
	}
	for i := 20; i < 24; i++ {
		v[i] = 0
	}
	v[Minutes-2] = 1480
	v[Minutes-1] = 312
	return v
}

func testSnapshot() *Snapshot {
	return &Snapshot{
		Version:  testVersion,
		Store:    "postgres",
		Database: "ok",
		Dedup:    "shared",
		Now:      testNow,
		Window:   "24h",
		Dynos:    2,
		Drains: []Report{
			{
				ID:             activeID,
				Name:           activeName,
				Apps:           []string{"shop", "shop-worker"},
				LastBatchAt:    ptr(testNow.Add(-3*time.Minute - 10*time.Second)),
				Frames:         1234567,
				FramesRejected: 7,
				Rejected:       map[string]uint64{"bad_header": 4, "oversized": 3, "bad_value": 12},
				LinesPerMinute: testLines(),
				Duplicates:     2,
				Late:           5,
				LateShifted:    1,
				KindConflict:   1,
				LogplexDropped: 9,
				LogplexLost:    1,
				OpenSeries:     42,
				Outlets: []Outlet{
					{Kind: "librato", Target: "https://metrics-api.librato.com/v1/metrics", State: "ok",
						LastPostAt: ptr(testNow.Add(-50 * time.Second)), Posted: 98765},
					{Kind: "remotewrite", Target: "https://prom.example.com/api/v1/write", State: "retrying",
						LastPostAt: ptr(testNow.Add(-4 * time.Minute)), MinutesWaiting: 3,
						LastError: retryError, LastErrorAt: ptr(testNow.Add(-20 * time.Second)), Posted: 4321, Dropped: 2},
				},
			},
			{
				ID:             BuiltinDrainID,
				Name:           waitingName,
				Rejected:       map[string]uint64{},
				LinesPerMinute: make([]uint64, Minutes),
				Outlets:        []Outlet{{Kind: "log", Target: "stdout", State: "ok"}},
			},
		},
	}
}

// fakeSource returns a copy of its snapshot, or only the drain asked for
// (unless ignoreID: a Source that gets it wrong).
type fakeSource struct {
	mu       sync.Mutex
	snap     *Snapshot
	err      error
	ignoreID bool
	calls    []string
}

func (s *fakeSource) Snapshot(_ context.Context, id string) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, id)
	if s.err != nil {
		return nil, s.err
	}
	out := *s.snap
	out.Drains = slices.Clone(s.snap.Drains)
	if id != "" && !s.ignoreID {
		out.Drains = slices.DeleteFunc(out.Drains, func(d Report) bool { return d.ID != id })
	}
	return &out, nil
}

func (s *fakeSource) Calls() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// fakeOwners knows each drain's secret.
type fakeOwners struct {
	secrets map[string]string
	err     error
}

func (o fakeOwners) Owner(_ context.Context, id, secret string) (bool, error) {
	if o.err != nil {
		return false, o.err
	}
	s, ok := o.secrets[id]
	return ok && s == secret, nil
}

func testOwners() fakeOwners {
	return fakeOwners{secrets: map[string]string{activeID: ownerSecret, BuiltinDrainID: "builtin-secret-for-tests"}}
}

type testEnv struct {
	h   http.Handler
	src *fakeSource
	log *bytes.Buffer
}

func newTestEnv(t testing.TB, cfg Config) *testEnv {
	t.Helper()
	if cfg.Version == "" {
		cfg.Version = testVersion
	}
	src := &fakeSource{snap: testSnapshot()}
	var log bytes.Buffer
	h := NewHandler(cfg, src, testOwners(), slog.New(slog.NewTextHandler(&log, nil)))
	return &testEnv{h: h, src: src, log: &log}
}

func adminConfig() Config {
	return Config{AdminPassword: testAdmin, OnDyno: true, Version: testVersion}
}

type response struct {
	*http.Response
	body string
}

// get serves one GET request; user and pass, when either is set, go in
// Basic auth; hdr adds headers ("Name: value").
func (e *testEnv) get(t testing.TB, path, user, pass string, hdr ...string) response {
	t.Helper()
	r := httptest.NewRequest(http.MethodGet, "http://drainmeter.example.com"+path, nil)
	if user != "" || pass != "" {
		r.SetBasicAuth(user, pass)
	}
	for _, h := range hdr {
		k, v, _ := strings.Cut(h, ": ")
		r.Header.Add(k, v)
	}
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, r)
	res := w.Result()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{res, string(b)}
}

var errTest = errors.New("test error")

func discardLog() *slog.Logger { return slog.New(slog.DiscardHandler) }
