package parse

// pairs scans logfmt key/value pairs without allocating. It follows kr/logfmt:
// bytes <= 0x20, '=' and '"' outside a pair are skipped; a key is a run of
// bytes > 0x20 other than '=' and '"'; a value is a bare run of bytes > 0x20
// or a quoted string with backslash escapes.
type pairs struct {
	b            []byte
	i            int
	start        int // where the current pair starts
	key, val     []byte
	quoted       bool // val came from a quoted string and may hold escapes
	unterminated bool // scanning stopped at an open quote
}

func (s *pairs) reset(b []byte) {
	*s = pairs{b: b}
}

// next advances to the next pair. It returns false at the end of the line or
// at an unterminated quote (then s.unterminated is set).
func (s *pairs) next() bool {
	b, i := s.b, s.i
	for i < len(b) && (b[i] <= ' ' || b[i] == '=' || b[i] == '"') {
		i++
	}
	if i >= len(b) {
		s.i = i
		return false
	}
	start := i
	s.start = start
	for i < len(b) && b[i] > ' ' && b[i] != '=' && b[i] != '"' {
		i++
	}
	s.key = b[start:i]
	s.val = nil
	s.quoted = false
	if i < len(b) && b[i] == '=' {
		i++
		if i < len(b) && b[i] == '"' {
			i++
			vs := i
			for {
				if i >= len(b) {
					s.i = len(b)
					s.unterminated = true
					return false
				}
				c := b[i]
				if c == '\\' {
					s.quoted = true
					i += 2
					continue
				}
				if c == '"' {
					break
				}
				i++
			}
			s.val = b[vs:i]
			i++ // closing quote
		} else {
			vs := i
			for i < len(b) && b[i] > ' ' {
				i++
			}
			s.val = b[vs:i]
		}
	}
	s.i = i
	return true
}

// raw returns the current pair as written.
func (s *pairs) raw() []byte { return s.b[s.start:s.i] }

// unquote appends val with \" and \\ escapes resolved to dst.
func unquote(dst, val []byte) []byte {
	for i := 0; i < len(val); i++ {
		c := val[i]
		if c == '\\' && i+1 < len(val) && (val[i+1] == '"' || val[i+1] == '\\') {
			i++
			c = val[i]
		}
		dst = append(dst, c)
	}
	return dst
}
