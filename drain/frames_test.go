package drain

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestFrameReader(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		max       int
		frames    []string
		err       error
		oversized int
	}{
		{"empty", "", 0, nil, nil, 0},
		{"two frames, no separator", "3 abc2 de", 0, []string{"abc", "de"}, nil, 0},
		{"LF counted", "4 abc\n5 <1>1\n", 0, []string{"abc\n", "<1>1\n"}, nil, 0},
		{"whitespace between frames and at the end", "3 abc\n\r\n2 de\n", 0, []string{"abc", "de"}, nil, 0},
		{"leading zeros", "003 abc", 0, []string{"abc"}, nil, 0},
		{"cut inside a frame", "3 abc5 de", 0, []string{"abc"}, io.ErrUnexpectedEOF, 0},
		{"cut inside the length", "3 abc12", 0, []string{"abc"}, io.ErrUnexpectedEOF, 0},
		{"length not a number", "3 abcx de", 0, []string{"abc"}, ErrBadLength, 0},
		{"zero length", "0 3 abc", 0, nil, ErrBadLength, 0},
		{"too many digits", "12345678901 x", 0, nil, ErrBadLength, 0},
		{"oversized frame skipped", "3 abc6 123456" + "2 ok", 5, []string{"abc", "ok"}, nil, 1},
		{"oversized and cut", "3 abc99 1234", 5, []string{"abc"}, ErrFrameTooBig, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, wrap := range []func(io.Reader) io.Reader{func(r io.Reader) io.Reader { return r }, iotest.OneByteReader} {
				fr := NewFrameReader(wrap(strings.NewReader(tt.in)), tt.max)
				var got []string
				for fr.Next() {
					got = append(got, string(fr.Bytes()))
				}
				if strings.Join(got, "|") != strings.Join(tt.frames, "|") {
					t.Errorf("frames %q, want %q", got, tt.frames)
				}
				if !errors.Is(fr.Err(), tt.err) || (tt.err == nil) != (fr.Err() == nil) {
					t.Errorf("err %v, want %v", fr.Err(), tt.err)
				}
				if fr.Oversized() != tt.oversized {
					t.Errorf("oversized %d, want %d", fr.Oversized(), tt.oversized)
				}
				if fr.Next() {
					t.Error("Next after the end returned true")
				}
			}
		})
	}
}

// FuzzFrameReader: no panic, every frame within the cap, and re-framing
// what was read yields the same frames.
func FuzzFrameReader(f *testing.F) {
	for _, s := range []string{"3 abc2 de", "4 abc\n", "3 abcx", "99999 x", "0 ", "12 <190>1 - h a"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		const max = 64
		fr := NewFrameReader(bytes.NewReader(body), max)
		var frames [][]byte
		for fr.Next() {
			b := fr.Bytes()
			if len(b) == 0 || len(b) > max {
				t.Fatalf("frame of %d bytes", len(b))
			}
			frames = append(frames, bytes.Clone(b))
		}
		var again []byte
		for _, fb := range frames {
			again = append(again, []byte(itoa(len(fb))+" ")...)
			again = append(again, fb...)
		}
		fr2 := NewFrameReader(bytes.NewReader(again), max)
		for i := 0; fr2.Next(); i++ {
			if !bytes.Equal(fr2.Bytes(), frames[i]) {
				t.Fatalf("frame %d differs after re-framing", i)
			}
		}
		if fr2.Err() != nil {
			t.Fatal(fr2.Err())
		}
	})
}

func itoa(n int) string {
	var b [20]byte
	i := len(b)
	for {
		i--
		b[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			return string(b[i:])
		}
	}
}
