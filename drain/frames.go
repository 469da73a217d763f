package drain

import (
	"bufio"
	"errors"
	"fmt"
	"io"
)

// MaxFrameBytes is the largest frame the drain accepts. Heroku splits dyno
// lines at 10,000 bytes; logplex's own frames are shorter still.
const MaxFrameBytes = 64 << 10

// Framing errors. The frames before one of them were read intact.
var (
	ErrBadLength   = errors.New("frame length is not a number")
	ErrFrameTooBig = errors.New("frame longer than the limit")
)

// FrameReader reads RFC 6587 octet-counted frames ("LEN SP MSG", no separator)
// from a logplex body, shaped like bufio.Scanner:
//
//	for fr.Next() { use(fr.Bytes()) }
//	if err := fr.Err(); err != nil { … }
//
// The length is checked against the cap before anything is buffered, and a
// frame's bytes are not copied: Bytes aliases an internal buffer and is valid
// until the next call to Next. A frame longer than the cap is skipped whole
// (its declared length tells where the next one starts) and counted in
// Oversized; a bad length or a body that ends inside a frame stops the reader
// with a sticky error (io.ErrUnexpectedEOF for a cut frame). Whitespace between
// frames is tolerated.
type FrameReader struct {
	br        *bufio.Reader
	max       int
	frame     []byte
	discard   int
	err       error
	oversized int
}

// NewFrameReader returns a reader of frames of at most maxFrame bytes.
func NewFrameReader(r io.Reader, maxFrame int) *FrameReader {
	if maxFrame <= 0 {
		maxFrame = MaxFrameBytes
	}
	// The buffer holds one whole frame plus its length prefix.
	return &FrameReader{br: bufio.NewReaderSize(r, maxFrame+16), max: maxFrame}
}

// Reset makes the reader read from r, keeping its buffer.
func (f *FrameReader) Reset(r io.Reader) {
	f.br.Reset(r)
	f.frame, f.discard, f.err, f.oversized = nil, 0, nil, 0
}

// Next advances to the next frame. It returns false at the end of the body
// or at an error; Err tells which.
func (f *FrameReader) Next() bool {
	if f.discard > 0 {
		_, _ = f.br.Discard(f.discard) // the bytes are buffered: cannot fail
		f.discard = 0
	}
	f.frame = nil
	for f.err == nil {
		n, err := f.readLength()
		if err != nil {
			if err != io.EOF {
				f.err = err
			}
			return false
		}
		if n > f.max {
			if _, err := f.br.Discard(n); err != nil {
				if err == io.EOF {
					err = io.ErrUnexpectedEOF
				}
				f.err = fmt.Errorf("%w (%d bytes): %w", ErrFrameTooBig, n, err)
				return false
			}
			f.oversized++
			continue
		}
		b, err := f.br.Peek(n)
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			f.err = err
			return false
		}
		f.frame, f.discard = b, n
		return true
	}
	return false
}

// readLength reads "LEN " and returns LEN; io.EOF at a clean end.
func (f *FrameReader) readLength() (int, error) {
	c, err := f.br.ReadByte()
	for err == nil && (c == '\n' || c == '\r' || c == ' ' || c == '\t') {
		c, err = f.br.ReadByte()
	}
	if err != nil {
		return 0, err // io.EOF between frames is the clean end
	}
	n, digits := 0, 0
	for {
		if c == ' ' && digits > 0 {
			break
		}
		if c < '0' || c > '9' || digits >= 10 {
			return 0, ErrBadLength
		}
		n = n*10 + int(c-'0')
		digits++
		if c, err = f.br.ReadByte(); err != nil {
			if err == io.EOF {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
	if n == 0 {
		return 0, ErrBadLength
	}
	return n, nil
}

// bufferBytes returns the size of the reader's buffer.
func (f *FrameReader) bufferBytes() int { return f.br.Size() }

// Bytes returns the current frame, without its length prefix.
func (f *FrameReader) Bytes() []byte { return f.frame }

// Err returns the error that stopped the reader, or nil at a clean end.
func (f *FrameReader) Err() error { return f.err }

// Oversized returns how many frames longer than the cap were skipped.
func (f *FrameReader) Oversized() int { return f.oversized }
