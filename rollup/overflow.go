package rollup

// maxOverflowNames bounds the names of overflowing measurements a drain
// remembers between two TakeOverflowed.
const maxOverflowNames = 32

// noteOverflow remembers the name of a measurement refused by the series
// guards (the overflow path only; ds.mu is held).
func (ds *drainState) noteOverflow(name []byte) {
	if len(ds.overflowed) >= maxOverflowNames { // full: a flood costs a length check
		return
	}
	if _, ok := ds.overflowed[string(name)]; ok {
		return
	}
	if ds.overflowed == nil {
		ds.overflowed = make(map[string]struct{})
	}
	ds.overflowed[string(name)] = struct{}{}
}

// TakeOverflowed returns, per drain, the names (at most 32 a drain) of the
// measurements the series guards refused since the last call: the names
// that did not fit, for the explorer's "why a metric is missing".
func (s *Store) TakeOverflowed() map[string][]string {
	s.mu.RLock()
	ids := make(map[string]*drainState, len(s.drains))
	for id, ds := range s.drains {
		ids[id] = ds
	}
	s.mu.RUnlock()
	var out map[string][]string
	for id, ds := range ids {
		ds.mu.Lock()
		if len(ds.overflowed) > 0 {
			if out == nil {
				out = map[string][]string{}
			}
			for n := range ds.overflowed {
				out[id] = append(out[id], n)
			}
			ds.overflowed = nil
		}
		ds.mu.Unlock()
	}
	return out
}

// noteLate counts a late measurement under its name, for at most
// maxOverflowNames names between two TakeLate (the late path only; ds.mu
// is held).
func (ds *drainState) noteLate(name []byte) {
	if n := ds.late[string(name)]; n != nil { // a lookup: no allocation
		*n++
		return
	}
	if len(ds.late) >= maxOverflowNames {
		return
	}
	if ds.late == nil {
		ds.late = make(map[string]*uint64)
	}
	one := uint64(1)
	ds.late[string(name)] = &one
}

// TakeLate returns, per drain and name (at most 32 names a drain), the
// late measurements counted since the last call.
func (s *Store) TakeLate() map[string]map[string]uint64 {
	var out map[string]map[string]uint64
	for id, ds := range s.snapshotDrains() {
		ds.mu.Lock()
		if len(ds.late) > 0 {
			if out == nil {
				out = map[string]map[string]uint64{}
			}
			by := make(map[string]uint64, len(ds.late))
			for name, n := range ds.late {
				by[name] = *n
			}
			out[id], ds.late = by, nil
		}
		ds.mu.Unlock()
	}
	return out
}

// snapshotDrains returns the drains by id.
func (s *Store) snapshotDrains() map[string]*drainState {
	s.mu.RLock()
	defer s.mu.RUnlock()
	ids := make(map[string]*drainState, len(s.drains))
	for id, ds := range s.drains {
		ids[id] = ds
	}
	return ids
}
