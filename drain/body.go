package drain

import (
	"compress/gzip"
	"errors"
	"io"
	"net/http"
	"strings"
	"time"
)

// The body readers of a request, from the connection up: its deadline and
// limit (net/http's MaxBytesReader), bodyReader (what arrived, and the
// connection's own error), the gzip reader and limitReader (what it inflates
// to), and meter (each byte charged to the request's memory share as it
// arrives, memory.go). Whatever the input, a body is read through them.

// bodyDeadline sets the connection's read deadline for a request's body: a
// minimum rate after a grace, counted from its arrival, for its
// Content-Length (or for MaxBodyBytes without one). A slower body is cut.
func (h *Handler) bodyDeadline(w http.ResponseWriter, r *http.Request, arrived time.Time) {
	expect := r.ContentLength
	if expect < 0 {
		expect = h.cfg.MaxBodyBytes
	}
	setReadDeadline(w, arrived.Add(h.cfg.BodyGrace+time.Duration(float64(expect)/float64(h.cfg.MinBodyRate)*float64(time.Second))))
}

// bodyReader counts what it reads and keeps the first error of the request
// body itself (a broken connection, a body over the limit), which a frame
// reader would otherwise report as a framing error.
type bodyReader struct {
	r     io.Reader
	n     int64
	err   error
	first []byte // read before the request's state was taken: returned first
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if len(b.first) > 0 && len(p) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		b.n += int64(n)
		return n, nil
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	if err != nil && err != io.EOF && b.err == nil {
		b.err = err
	}
	return n, err
}

// errDecompressedTooLarge is a gzip body that inflates past the limit.
var errDecompressedTooLarge = errors.New("decompressed body too large")

// limitReader is io.LimitReader that fails loudly at the limit.
type limitReader struct {
	r    io.Reader
	left int64
	err  error // the decompressor's own error (corrupt or cut data)
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		l.err = errDecompressedTooLarge
		return 0, l.err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if err != nil && err != io.EOF && l.err == nil {
		l.err = err
	}
	return n, err
}

// encoding reports whether a Content-Encoding is gzip; ok=false for an
// encoding drainmeter cannot read.
func encoding(h string) (gz, ok bool) {
	switch strings.ToLower(strings.TrimSpace(h)) {
	case "", "identity":
		return false, true
	case "gzip", "x-gzip":
		return true, true
	}
	return false, false
}

// meter charges every byte read through it to its request, and stops the
// body once the request is refused.
type meter struct {
	r  io.Reader
	st *reqState
}

func (m *meter) Read(p []byte) (int, error) {
	if err := m.st.refused; err != nil {
		return 0, err
	}
	n, err := m.r.Read(p)
	m.st.charge(int64(n))
	return n, err
}

// open sets the request's body up to be read: its first bytes (read by
// admit), then the rest of body, inflated when gz, charged as it arrives.
// An error is a gzip header that could not be read.
func (st *reqState) open(a *admitted, maxDecompressed int64) (io.Reader, error) {
	st.first = a.first
	st.body = bodyReader{r: a.body, first: st.first[:a.nfirst]}
	var src io.Reader = &st.body
	if a.gz {
		if st.zr == nil {
			st.zr = new(gzip.Reader)
		}
		if err := st.zr.Reset(src); err != nil {
			return nil, &readError{ds: a.ds, what: "gzip header", read: st.body.n, err: err}
		}
		st.unzip = limitReader{r: st.zr, left: maxDecompressed}
		src = &st.unzip
	}
	st.meter = meter{r: src, st: st}
	return &st.meter, nil
}

// finish reads what is left of the body, whatever happened to its
// parsing: only a body read to its end (the gzip trailer checked, the last
// chunk received) counts. An error says why it could not be read whole
// (nothing of it counts); on a refusal of its memory the rest is not read
// (the connection is closed after the answer).
func (st *reqState) finish(a *admitted, src io.Reader) error {
	if st.refused == nil {
		_, _ = io.Copy(io.Discard, src)
	}
	if a.gz && st.refused == nil {
		_, _ = io.Copy(io.Discard, &st.body) // anything after the gzip stream
	}
	if st.refused != nil {
		return memoryFailure(a.ds, st.refused, st.limit)
	}
	if err := st.body.err; err != nil {
		return &readError{ds: a.ds, what: "body", read: st.body.n, err: err}
	}
	if a.gz && st.unzip.err != nil {
		return &readError{ds: a.ds, what: "gzip body", read: st.body.n, err: st.unzip.err}
	}
	return nil
}
