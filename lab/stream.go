package lab

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// maxGaps bounds the gaps a tracker remembers.
const maxGaps = 4096

// minGap is the shortest silence a tracker remembers as a gap; shorter
// ones are the sender's own pacing.
const minGap = 20 * time.Millisecond

// Gap is one interval without received data.
type Gap struct {
	From, To time.Time // last data before, first data after
}

// Len returns the gap's length.
func (g Gap) Len() time.Duration { return g.To.Sub(g.From) }

// GapTracker records when data arrives on a connection and the intervals
// without data. The zero value is ready; it is safe for concurrent use.
type GapTracker struct {
	mu     sync.Mutex
	first  time.Time
	last   time.Time
	bytes  int64
	gaps   []Gap
	maxGap Gap
}

// Observe records n bytes received at now.
func (t *GapTracker) Observe(now time.Time, n int) {
	if n <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.first.IsZero() {
		t.first = now
	} else if g := (Gap{t.last, now}); g.Len() >= minGap {
		if len(t.gaps) == maxGaps {
			t.gaps = t.gaps[1:] // keep the newest: the failure is recent
		}
		t.gaps = append(t.gaps, g)
		if g.Len() > t.maxGap.Len() {
			t.maxGap = g
		}
	}
	t.last = now
	t.bytes += int64(n)
}

// Bytes returns the bytes received so far.
func (t *GapTracker) Bytes() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bytes
}

// Last returns when data last arrived (zero if never).
func (t *GapTracker) Last() time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.last
}

// MaxGap returns the largest gap so far, counting the silence from the
// last data to now as a gap still open (To = now).
func (t *GapTracker) MaxGap(now time.Time) Gap {
	return t.MaxGapAfter(time.Time{}, now)
}

// MaxGapAfter returns the largest gap that ends after since (so a gap that
// spans a failure injected at since counts), including the open gap from
// the last data to now. Gaps before the first data do not count.
func (t *GapTracker) MaxGapAfter(since, now time.Time) Gap {
	t.mu.Lock()
	defer t.mu.Unlock()
	var best Gap
	if since.IsZero() {
		best = t.maxGap
	} else {
		for _, g := range t.gaps {
			if g.To.After(since) && g.Len() > best.Len() {
				best = g
			}
		}
	}
	if !t.last.IsZero() && now.After(since) {
		if open := (Gap{t.last, now}); open.Len() > best.Len() {
			best = open
		}
	}
	return best
}

// StreamConfig describes one TCP stream: From dials To and sends; To
// receives and tracks gaps.
type StreamConfig struct {
	Name string
	From Node
	Src  netip.Addr // bound as the source (a host address)
	To   Node
	Dst  netip.Addr
	Port uint16
	// Rate in bytes per second (default 1 MB/s, paced every 10 ms so gaps
	// are measured to about 10 ms); negative: as fast as possible.
	Rate int
	// Host is the site-1 host whose session this is and Addressing how it
	// got its address (AddrStatic, ...); default From and AddrStatic.
	Host       Node
	Addressing string
}

// StreamStats is a snapshot of a stream.
type StreamStats struct {
	Name        string    `json:"name"`
	Src         string    `json:"src"`
	Dst         string    `json:"dst"`
	Established bool      `json:"established"`
	Sent        int64     `json:"sent"`
	Bytes       int64     `json:"bytes"` // received
	LastRecv    time.Time `json:"last_recv"`
	MaxGapMS    int64     `json:"max_gap_ms"`
	Resets      int       `json:"resets"`
	Err         string    `json:"error,omitempty"`
	Host        Node      `json:"host"`
	Addressing  string    `json:"addressing"`
}

// Stream is a running TCP stream.
type Stream struct {
	cfg     StreamConfig
	Tracker GapTracker

	send, recv *net.TCPConn
	done       chan struct{}
	wg         sync.WaitGroup

	mu     sync.Mutex
	sent   int64
	resets int
	err    error
}

// StartStream connects a TCP stream from cfg.From to cfg.To and starts
// sending. Connection setup is bounded by 5 s and ctx.
func (l *Lab) StartStream(ctx context.Context, cfg StreamConfig) (*Stream, error) {
	if cfg.Rate == 0 {
		cfg.Rate = 1 << 20
	}
	if cfg.Port == 0 {
		return nil, errors.New("lab: stream needs a port")
	}
	if cfg.Name == "" {
		cfg.Name = fmt.Sprintf("%s->%s", cfg.From, cfg.To)
	}
	if cfg.Host == "" {
		cfg.Host = cfg.From
	}
	if cfg.Addressing == "" {
		cfg.Addressing = addressing(cfg.Host)
	}
	var ln *net.TCPListener
	err := inNS(l.NS(cfg.To), func() error {
		var err error
		ln, err = net.ListenTCP("tcp6", net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.Dst, cfg.Port)))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lab: stream %s: listen: %w", cfg.Name, err)
	}
	defer ln.Close()
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		_ = ln.SetDeadline(time.Now().Add(6 * time.Second))
		c, err := ln.AcceptTCP()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	var send *net.TCPConn
	err = inNS(l.NS(cfg.From), func() error {
		d := net.Dialer{Timeout: 5 * time.Second, FallbackDelay: -1,
			LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(cfg.Src, 0))}
		c, err := d.DialContext(ctx, "tcp6", netip.AddrPortFrom(cfg.Dst, cfg.Port).String())
		if err != nil {
			return err
		}
		send = c.(*net.TCPConn)
		return nil
	})
	if err != nil {
		_ = ln.Close()
		if c, ok := <-accepted; ok {
			c.Close()
		}
		return nil, fmt.Errorf("lab: stream %s: dial: %w", cfg.Name, err)
	}
	recv, ok := <-accepted
	if !ok {
		send.Close()
		return nil, fmt.Errorf("lab: stream %s: accept timed out", cfg.Name)
	}
	s := &Stream{cfg: cfg, send: send, recv: recv, done: make(chan struct{})}
	s.wg.Add(2)
	go s.sender()
	go s.receiver()
	return s, nil
}

// sender writes cfg.Rate bytes per second in 10 ms slices.
func (s *Stream) sender() {
	defer s.wg.Done()
	chunk := s.cfg.Rate / 100
	if s.cfg.Rate < 0 {
		chunk = 64 << 10
	}
	buf := make([]byte, max(chunk, 1))
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if s.cfg.Rate > 0 {
			select {
			case <-s.done:
				return
			case <-tick.C:
			}
		} else {
			select {
			case <-s.done:
				return
			default:
			}
		}
		// A full send buffer (path down) blocks; the deadline lets the
		// loop notice Stop, and the write resumes where TCP can.
		_ = s.send.SetWriteDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := s.send.Write(buf)
		s.mu.Lock()
		s.sent += int64(n)
		s.mu.Unlock()
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			s.fail(err)
			return
		}
	}
}

// receiver reads and feeds the gap tracker.
func (s *Stream) receiver() {
	defer s.wg.Done()
	buf := make([]byte, 256<<10)
	for {
		select {
		case <-s.done:
			return
		default:
		}
		_ = s.recv.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		n, err := s.recv.Read(buf)
		s.Tracker.Observe(time.Now(), n)
		if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			s.fail(err)
			return
		}
	}
}

// fail records the first error; resets count separately. An error after
// Stop (closed sockets) is not recorded.
func (s *Stream) fail(err error) {
	select {
	case <-s.done:
		return
	default:
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		s.resets++
	}
	if errors.Is(err, io.EOF) {
		err = errors.New("connection closed by peer")
	}
	if s.err == nil {
		s.err = err
	}
}

// Alive reports whether the stream has seen no error or reset.
func (s *Stream) Alive() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err == nil
}

// Stats returns a snapshot; gaps count up to now.
func (s *Stream) Stats(now time.Time) StreamStats {
	s.mu.Lock()
	st := StreamStats{Name: s.cfg.Name, Established: true, Sent: s.sent, Resets: s.resets,
		Src: s.send.LocalAddr().String(), Dst: s.send.RemoteAddr().String(),
		Host: s.cfg.Host, Addressing: s.cfg.Addressing}
	if s.err != nil {
		st.Err = s.err.Error()
	}
	s.mu.Unlock()
	st.Bytes = s.Tracker.Bytes()
	st.LastRecv = s.Tracker.Last()
	st.MaxGapMS = s.Tracker.MaxGap(now).Len().Milliseconds()
	return st
}

// Stop ends the stream and returns its final statistics (taken before the
// sockets close, so the close itself is not a gap or an error).
func (s *Stream) Stop() StreamStats {
	st := s.Stats(time.Now())
	select {
	case <-s.done:
		return st
	default:
	}
	close(s.done)
	s.wg.Wait()
	s.send.Close()
	s.recv.Close()
	return st
}

// UDPProbe sends n datagrams from src in node from to dst in node to and
// returns how many arrived (waiting up to wait after the last one). It
// proves or disproves one path without TCP's retransmissions.
func (l *Lab) UDPProbe(ctx context.Context, from Node, src netip.Addr, to Node, dst netip.Addr, port uint16, n int, wait time.Duration) (int, error) {
	var rc *net.UDPConn
	if err := inNS(l.NS(to), func() error {
		var err error
		rc, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
		return err
	}); err != nil {
		return 0, fmt.Errorf("lab: probe listen: %w", err)
	}
	defer rc.Close()
	var sc *net.UDPConn
	if err := inNS(l.NS(from), func() error {
		var err error
		sc, err = net.DialUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)),
			net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, port)))
		return err
	}); err != nil {
		return 0, fmt.Errorf("lab: probe dial: %w", err)
	}
	defer sc.Close()
	got := make(chan int, 1)
	go func() {
		buf := make([]byte, 64)
		count := 0
		for count < n {
			_ = rc.SetReadDeadline(time.Now().Add(wait))
			if _, err := rc.Read(buf); err != nil {
				break
			}
			count++
		}
		got <- count
	}()
	for i := 0; i < n; i++ {
		if ctx.Err() != nil {
			break
		}
		// The first send may wait for neighbour discovery; ENETUNREACH or
		// EHOSTUNREACH from an ICMP error just means "did not arrive".
		_, _ = sc.Write([]byte(fmt.Sprintf("s6lab probe %d", i)))
		time.Sleep(20 * time.Millisecond)
	}
	return <-got, ctx.Err()
}
