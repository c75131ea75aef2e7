package tunnel

import "sync/atomic"

// Diverted is one packet copied out of a batch for the control loop. The
// receiver reads Bytes and must call Release when done, which returns the
// buffer to the queue; a Diverted that is never released shrinks the
// queue for good.
type Diverted struct {
	buf []byte
	n   int
	q   *DivertQueue
}

// Bytes returns the packet. It is valid until Release.
func (d *Diverted) Bytes() []byte { return d.buf[:d.n] }

// Release gives the buffer back to the queue.
func (d *Diverted) Release() {
	d.n = 0
	d.q.free <- d // never blocks: free has room for every element
}

// DivertQueue is a bounded queue of packets from the data path to the
// control loop, with buffers allocated once. Push never blocks: when every
// buffer is queued or held by the receiver, the packet is dropped and
// counted.
type DivertQueue struct {
	ch   chan *Diverted
	free chan *Diverted
	max  int

	// Pushed counts packets queued; Dropped counts packets lost because
	// the queue was full; Oversize counts packets larger than the buffers.
	Pushed, Dropped, Oversize atomic.Uint64
}

// NewDivertQueue returns a queue of n buffers of maxSize bytes each.
func NewDivertQueue(n, maxSize int) *DivertQueue {
	n = max(n, 1)
	q := &DivertQueue{
		ch:   make(chan *Diverted, n),
		free: make(chan *Diverted, n),
		max:  maxSize,
	}
	backing := make([]byte, n*maxSize)
	for i := range n {
		q.free <- &Diverted{buf: backing[i*maxSize : (i+1)*maxSize : (i+1)*maxSize], q: q}
	}
	return q
}

// C returns the channel the control loop receives diverted packets on.
func (q *DivertQueue) C() <-chan *Diverted { return q.ch }

// Push copies pkt into a free buffer and queues it. It reports whether the
// packet was queued; it never blocks.
func (q *DivertQueue) Push(pkt []byte) bool {
	if len(pkt) > q.max {
		q.Oversize.Add(1)
		return false
	}
	select {
	case d := <-q.free:
		d.n = copy(d.buf, pkt)
		q.ch <- d // never blocks: ch has room for every element
		q.Pushed.Add(1)
		return true
	default:
		q.Dropped.Add(1)
		return false
	}
}
