package drain

import (
	"errors"
	"unsafe"

	"github.com/drainmeter/drainmeter/internal/budget"
	"github.com/drainmeter/drainmeter/parse"
)

// A request's memory is accounted in bytes against its drain's share of
// the bodies budget (Config.Bodies, Config.MaxDrainBytes), from the moment
// its body is read until it is answered:
//
//   - its scratch space (the frame reader's buffer, the gzip reader, the
//     parser's scratch and the capacity of the batch kept from a previous
//     request),
//   - every byte of its body as it streams, after decompression,
//   - what parsing it holds until the body is whole: the batch's
//     measurements (the capacity of their slice, at measurementBytes each)
//     and the arena their names, sources, units and members are copied to.
//
// Bytes are acquired in chunks of at least reserveChunk, so the share's
// atomic counter is touched a few times per request. A request that alone
// needs more than MaxDrainBytes is refused with 413 (its retry would be
// refused again); one that does not fit because the drain's or the
// process's share is full gets 503 and Retry-After (logplex retries).

// measurementBytes is what one measurement of a batch costs in its slice.
const measurementBytes = int(unsafe.Sizeof(parse.Measurement{}))

// gzipReaderBytes is what a gzip reader holds: the inflater's tables and
// its 32 KiB window.
const gzipReaderBytes = 48 << 10

// reserveChunk is the least a request acquires from its share at a time:
// small, so that what a request holds is charged about as its bytes arrive.
const reserveChunk = 16 << 10

// keepBytes bounds the scratch space a request state keeps for the next
// request: a state that grew past it (a huge batch) is dropped, not pooled,
// so that memory no request accounts for any longer is given back.
const keepBytes = 1 << 20

// Reasons a request's body stops being read.
var (
	errRequestTooLarge = errors.New("the request holds more than its drain's share of the bodies budget")
	errBudgetFull      = errors.New("the bodies budget is full")
)

// retained returns the bytes the state's scratch space holds.
func (st *reqState) retained() int64 {
	n := st.fr.bufferBytes() + cap(st.batch)*measurementBytes + cap(st.arena) + st.p.ScratchBytes()
	if st.zr != nil {
		n += gzipReaderBytes
	}
	return int64(n)
}

// begin starts accounting a request against share, which one request may
// not exceed on its own either (limit bytes). It is called once the body's
// first bytes arrived: what the request holds is charged from then on, as
// it grows, never reserved ahead.
func (st *reqState) begin(share *budget.Share, limit int64, gz bool) {
	st.share, st.limit = share, limit
	st.reserved, st.refused = 0, nil
	st.batchCap, st.arenaCap, st.scratch = cap(st.batch), cap(st.arena), st.p.ScratchBytes()
	st.held = st.retained()
	if gz && st.zr == nil {
		st.held += gzipReaderBytes // the reader about to be made
	}
	st.reserve()
}

// end releases what the request acquired.
func (st *reqState) end() {
	st.share.Release(st.reserved)
	st.share, st.reserved = nil, 0
}

// charge adds n bytes to what the request holds.
func (st *reqState) charge(n int64) {
	st.held += n
	if st.held > st.reserved && st.refused == nil {
		st.reserve()
	}
}

// reserve acquires what the request holds beyond what it reserved.
func (st *reqState) reserve() {
	if st.held <= st.reserved {
		return
	}
	if st.held > st.limit {
		st.refused = errRequestTooLarge
		return
	}
	chunk := max(st.held-st.reserved, reserveChunk)
	if st.reserved+chunk > st.limit {
		chunk = st.limit - st.reserved
	}
	if !st.share.TryAcquire(chunk) {
		st.refused = errBudgetFull
		return
	}
	st.reserved += chunk
}

// chargeGrowth charges what the batch, the arena and the parser's scratch
// grew by since they were last charged.
func (st *reqState) chargeGrowth() {
	var n int
	if c := cap(st.batch); c != st.batchCap {
		n += (c - st.batchCap) * measurementBytes
		st.batchCap = c
	}
	if c := cap(st.arena); c != st.arenaCap {
		n += c - st.arenaCap
		st.arenaCap = c
	}
	if s := st.p.ScratchBytes(); s != st.scratch {
		n += s - st.scratch
		st.scratch = s
	}
	if n > 0 {
		st.charge(int64(n))
	}
}

// reusable reports whether the state is worth keeping for another request.
func (st *reqState) reusable() bool { return st.retained() <= keepBytes }
