package parse

import (
	"slices"
	"testing"
	"time"
)

// TestAppDimension: with Options.App every measurement carries the app as
// the dimension AppDim, before the route's.
func TestAppDimension(t *testing.T) {
	p := NewParser(Options{App: "shop", RouteMetrics: RoutesAuto})
	var got []string
	emit := func(m *Measurement) {
		var ds []string
		EachDim(string(m.Dims), func(k, v string) { ds = append(ds, k+"="+v) })
		got = append(got, string(m.Name)+" "+string(m.Source)+" "+ds[0]+" "+string(rune('0'+len(ds))))
	}
	recv := time.Date(2025, 1, 1, 0, 0, 30, 0, time.UTC)
	p.Frame([]byte("<190>1 2025-01-01T00:00:01+00:00 host app web.1 - count#a=1"), recv, emit)
	p.Frame([]byte(`<158>1 2025-01-01T00:00:02+00:00 host heroku router - at=info method=GET path="/users/7" dyno=web.1 connect=1ms service=5ms status=200 bytes=1`), recv, emit)
	want := []string{"a web.1 app=shop 1", "router.connect web.1 app=shop 1", "router.service web.1 app=shop 1", "router.bytes web.1 app=shop 1",
		"router.requests web.1 app=shop 1", "router.status.2xx web.1 app=shop 1",
		"router.service  app=shop 2", "router.requests  app=shop 2", "router.status.2xx  app=shop 2"}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
}

// TestAddonNamespaces: Postgres' and Redis' lines in their namespaces,
// sizes in bytes; the dynos' own names untouched.
func TestAddonNamespaces(t *testing.T) {
	p := NewParser(Options{})
	got := map[string]float64{}
	units := map[string]string{}
	emit := func(m *Measurement) {
		got[string(m.Name)+"|"+string(m.Source)], units[string(m.Name)] = m.Value, string(m.Unit)
	}
	recv := time.Date(2025, 1, 1, 0, 0, 30, 0, time.UTC)
	for _, l := range []string{
		"<134>1 2025-01-01T00:00:01+00:00 host app heroku-postgres - source=DATABASE sample#memory-total=2kB sample#db_size=10bytes sample#tmp-disk-used=7 sample#load-avg-1m=0.5 sample#tables=3",
		"<134>1 2025-01-01T00:00:01+00:00 host app heroku-redis - source=REDIS sample#memory-total=1.5MB sample#memory-redis=9bytes sample#hit-rate=0.25",
		"<134>1 2025-01-01T00:00:01+00:00 host heroku web.1 - source=web.1 dyno=heroku.1.x sample#memory_total=412.5MB sample#load_avg_1m=0.1",
	} {
		p.Frame([]byte(l), recv, emit)
	}
	want := map[string]float64{
		"heroku.postgres.memory_total_bytes|DATABASE": 2048, "heroku.postgres.db_size_bytes|DATABASE": 10,
		"heroku.postgres.tmp_disk_used_bytes|DATABASE": 7, "heroku.postgres.load_avg_1m|DATABASE": 0.5, "heroku.postgres.tables|DATABASE": 3,
		"heroku.redis.memory_total_bytes|REDIS": 1.5 * (1 << 20), "heroku.redis.memory_redis_bytes|REDIS": 9, "heroku.redis.hit_rate|REDIS": 0.25,
		"memory_total|web.1": 412.5, "load_avg_1m|web.1": 0.1,
	}
	if len(got) != len(want) {
		t.Errorf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v, want %v", k, got[k], v)
		}
	}
	if units["heroku.postgres.memory_total_bytes"] != "bytes" || units["heroku.postgres.tmp_disk_used_bytes"] != "bytes" || units["memory_total"] != "MB" {
		t.Errorf("units %v", units)
	}
}
