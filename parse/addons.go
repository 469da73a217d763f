package parse

import "bytes"

// Heroku Postgres' and Heroku Redis' metrics lines (APP-NAME app, PROCID
// heroku-postgres or heroku-redis) are in their own namespace, so that
// they never share a name with a dyno's (both log memory-total and
// load-avg-1m): heroku.postgres.NAME and heroku.redis.NAME, the key's '-'
// made '_' (heroku.postgres.load_avg_1m). Their source is the add-on's
// attachment (source=DATABASE), as written.
//
// Sizes are converted to bytes, the base unit, and say so in their name
// and unit: memory-total=3944484kB is heroku.postgres.memory_total_bytes =
// 4039151616, unit bytes; db_size=…bytes is heroku.postgres.db_size_bytes;
// tmp-disk-used and tmp-disk-available, logged without a unit, are bytes
// already. Heroku's kB are KiB (the server's /proc/meminfo), so 1 kB =
// 1024 bytes. Every other value (counts, ratios, load averages, IOPS) is
// as written.
var (
	addonPostgres = []byte("heroku.postgres.")
	addonRedis    = []byte("heroku.redis.")
)

// addonNamespace returns the namespace of an add-on's metrics line, or nil.
func addonNamespace(h *Header) []byte {
	if string(h.App) != "app" {
		return nil
	}
	switch string(h.ProcID) {
	case "heroku-postgres":
		return addonPostgres
	case "heroku-redis":
		return addonRedis
	}
	return nil
}

// byteUnits are the size units of add-on lines, by their factor to bytes.
var byteUnits = map[string]float64{
	"bytes": 1, "byte": 1, "B": 1,
	"kB": 1 << 10, "KB": 1 << 10, "KiB": 1 << 10,
	"MB": 1 << 20, "MiB": 1 << 20,
	"GB": 1 << 30, "GiB": 1 << 30,
}

// unitlessBytes are add-on keys whose values are bytes without a unit.
var unitlessBytes = map[string]bool{"tmp-disk-used": true, "tmp-disk-available": true}

// addonMetric returns an add-on line's metric name (in p.addonName), value
// and unit: namespaced, sizes in bytes.
func (p *Parser) addonMetric(ns, name []byte, v float64, unit []byte) ([]byte, float64, []byte) {
	n := append(p.addonName[:0], ns...)
	start := len(n)
	n = append(n, name...)
	for i := start; i < len(n); i++ {
		if n[i] == '-' {
			n[i] = '_'
		}
	}
	f, isSize := byteUnits[string(unit)]
	if !isSize && len(unit) == 0 && unitlessBytes[string(name)] {
		f, isSize = 1, true
	}
	if isSize {
		v *= f
		unit = unitBytes
		if !bytes.HasSuffix(n, []byte("_bytes")) {
			n = append(n, "_bytes"...)
		}
	}
	p.addonName = n
	return n, v, unit
}
