package loadgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// PathMode says what paths the generator's router lines request.
type PathMode int

// The path modes.
const (
	PathItems PathMode = iota // /items/N: a distinct path per request (drains without routes)
	PathAPI                   // an API's paths with ids in them; per-route totals are kept
	PathScan                  // a distinct random path per request, no ids: a path scanner
)

// SetPaths chooses the router lines' paths. With PathScan, every line is a
// router line.
func (g *Generator) SetPaths(m PathMode) {
	g.paths = m
	if m == PathScan {
		g.mix = [3]int{10, 0, 0}
	}
}

// RouteKey names one route series of a minute.
type RouteKey struct {
	Name   string `json:"name"`
	Route  string `json:"route"`
	Minute int64  `json:"minute"`
}

// APIRoutes and APIRouteMetrics are the route options under which PathAPI's
// requests get the routes its totals record.
var (
	APIRoutes       = []string{"/users/:id", "/orders/:id/items"}
	APIRouteMetrics = "auto"
)

type apiRoute struct {
	method, route string  // the route drainmeter makes of the path (APIRoutes, APIRouteMetrics)
	median        float64 // service time, ms
	path          func(*rand.Rand) string
}

var apiRoutes = []apiRoute{
	{"GET", "GET /users/:id", 25, func(r *rand.Rand) string { return fmt.Sprintf("/users/%d", 1+r.IntN(100000)) }},
	{"GET", "GET /users/:id", 25, func(r *rand.Rand) string { return fmt.Sprintf("/users/%d/", 1+r.IntN(100000)) }},
	{"GET", "GET /orders/:id/items", 60, func(r *rand.Rand) string {
		return fmt.Sprintf("/orders/%08x-%04x-4%03x-a%03x-%012x/items", r.Uint32(), r.IntN(1<<16), r.IntN(1<<12), r.IntN(1<<12), r.Uint64()>>16)
	}},
	{"POST", "POST /orders", 120, func(*rand.Rand) string { return "/orders" }},
	{"GET", "GET /search", 200, func(r *rand.Rand) string {
		return fmt.Sprintf("/search?q=%s&page=%d", scanWords[r.IntN(len(scanWords))], 1+r.IntN(5))
	}},
	{"GET", "GET /", 8, func(*rand.Rand) string { return "/" }},
	{"GET", "GET /products/:id", 35, func(r *rand.Rand) string { return fmt.Sprintf("/products/%016x%016x", r.Uint64(), r.Uint64()) }},
	{"GET", "GET /invoices/:id/pdf", 400, func(r *rand.Rand) string { return fmt.Sprintf("/invoices/%d/pdf", 2020000+r.IntN(9999)) }},
	{"PUT", "PUT /users/:id/avatar", 300, func(r *rand.Rand) string { return fmt.Sprintf("/users/%d/avatar", 1+r.IntN(100000)) }},
	{"GET", "GET /reset/:id", 15, func(r *rand.Rand) string {
		const b64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
		var t strings.Builder
		for range 27 {
			t.WriteByte(b64[r.IntN(len(b64))])
		}
		return "/reset/" + t.String() + "7"
	}},
}

var (
	scanDirs  = []string{"wp-admin", "cgi-bin", "admin", "phpmyadmin", "backup", ".git", "vendor", "old"}
	scanWords = []string{"setup", "config", "shell", "login", "install", "upload", "test", "info", "db", "admin"}
)
