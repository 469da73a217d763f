// Package parse turns one syslog frame from a Heroku log drain into measurements.
//
// It is pure: bytes in, measurements out through a callback, rejects counted by
// reason. It starts no goroutines, does no I/O and reads no clock (the receive
// time is an argument). A Parser keeps scratch space so that, in the steady
// state, parsing a frame allocates nothing.
//
// # Accepted grammar
//
// A frame (without its octet count) is
//
//	<PRI>VERSION SP TIMESTAMP SP HOST SP APP-NAME SP PROCID SP MSGID [SP MSG]
//
// MSG may start with a structured-data element: a leading "- " or one leading
// "[...]" element is skipped. One trailing LF (and a CR before it) is stripped.
// TIMESTAMP is RFC 3339 with any offset and 0–9 fractional digits; "-" or an
// unparseable timestamp means the receive time.
//
// MSG is read as logfmt: a key is a run of bytes > 0x20 other than '=' and '"';
// a value is a bare run of bytes > 0x20 or a double-quoted string with \"
// escapes; "key" and "key=" give an empty value. Free text between pairs is
// skipped. An unterminated quote ends the line's pairs; the pairs before it
// still count.
//
// Keys (case-sensitive prefixes):
//
//	measure#NAME=V   measure (empty value: 1)
//	measure.NAME=V   measure (l2met legacy)
//	measure=NAME val=V [units=U]   measure (l2met v1); a sample on APP-NAME "heroku" lines
//	count#NAME=V     count   (empty value: 1)
//	sample#NAME=V    sample  (empty value: 1)
//	unique#NAME=M    unique  (M is the member, 1–128 bytes)
//
// A value is [+-]?(digits[.digits]|.digits)([eE][+-]?digits)? followed by a
// unit made only of letters, '%' or '/'. Anything else, or a value that
// overflows to ±Inf, rejects that pair only.
//
// A metric name, source or unit longer than 255 bytes (MaxNameBytes, with
// the drain's prefixes applied) rejects its measurement (LongName): it is
// never cut, so two names that differ only after byte 255 stay apart.
//
// Heroku's own lines (APP-NAME "heroku": router, dyno manager, logplex;
// log-shuttle's L12/L13) produce the series in README's "What you get".
// The source of a measurement is, in order: the first non-empty source= of
// the line (Heroku's legacy heroku.<app>.<dyno>.<uuid> becomes <dyno>), the
// router's dyno=, a PROCID that is a dyno name, or none.
//
// With Options.RouteMetrics, a router line also gives per-route series
// (section 8): measure router.service and counts router.requests and
// router.status.Nxx with no source and the dimension route="METHOD /path",
// the path being the first of Options.Routes that matches (":name" is one
// segment, a last "*" one or more), or, in auto mode, the path with ids
// (digits, UUIDs, hex of 16 or more, tokens of 24 or more with a digit)
// replaced by ":id"; otherwise route "other". Query strings, empty segments
// and trailing slashes are ignored.
//
// The Platform API's lines (APP-NAME "app", PROCID "api": releases,
// deploys, rollbacks, scaling, maintenance mode) give the counts and
// samples of section 9, and an Event per release, deploy and rollback,
// titled with the line up to " by user". Losses that log-shuttle reports in
// headers go through Parser.Losses (section 10).
package parse
