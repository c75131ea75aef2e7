package lab

import (
	"bytes"
	"io"
	"regexp"
	"sync"
	"time"
)

// Sources of lab events.
const (
	SourceLab     = "lab"     // what the lab did (failures, power off/on)
	SourceGateway = "gateway" // a shim6gw log line
	SourceVRRP    = "vrrp"    // a keepalived log line
)

// maxEvents bounds an EventLog; later events are counted, not kept.
const maxEvents = 4096

// Event is one notable moment of a lab run.
type Event struct {
	At     time.Time `json:"at"`
	Node   Node      `json:"node"`
	Source string    `json:"source"`
	What   string    `json:"what"`
}

// EventLog collects events from the lab and from its processes' logs.
// A nil *EventLog discards everything. It is safe for concurrent use.
type EventLog struct {
	mu      sync.Mutex
	events  []Event
	dropped int
	now     func() time.Time
}

// NewEventLog returns an empty log.
func NewEventLog() *EventLog { return &EventLog{now: time.Now} }

// Add records what happened at node now.
func (e *EventLog) Add(n Node, source, what string) {
	if e == nil {
		return
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if len(e.events) >= maxEvents {
		e.dropped++
		return
	}
	e.events = append(e.events, Event{At: e.now(), Node: n, Source: source, What: what})
}

// Events returns a copy of the events so far, in arrival order.
func (e *EventLog) Events() []Event {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Event(nil), e.events...)
}

// Writer returns a writer for the log output of a process at node n: each
// line that says something the plot shows (see classify) becomes an event,
// stamped when it arrives.
func (e *EventLog) Writer(n Node, source string) io.Writer {
	if e == nil {
		return io.Discard
	}
	return &eventWriter{log: e, node: n, source: source}
}

type eventWriter struct {
	log    *EventLog
	node   Node
	source string
	mu     sync.Mutex
	buf    []byte
}

// maxLine bounds a buffered partial line.
const maxLine = 8192

func (w *eventWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		if what := classify(w.source, w.buf[:i]); what != "" {
			w.log.Add(w.node, w.source, what)
		}
		w.buf = w.buf[i+1:]
	}
	if len(w.buf) > maxLine {
		w.buf = w.buf[:0]
	}
	return len(p), nil
}

var (
	gwMsg    = regexp.MustCompile(`msg=(?:"(uplink down|uplink up|context recovered|path exploration started)"|(failover))(?:\s|$)`)
	gwUplink = regexp.MustCompile(`\buplink=(\S+)`)
	vrrpMsg  = regexp.MustCompile(`\(lan\) Entering (MASTER|BACKUP|FAULT) STATE`)
)

// classify names the event a log line reports, or "" for none.
func classify(source string, line []byte) string {
	switch source {
	case SourceGateway:
		m := gwMsg.FindSubmatch(line)
		if m == nil {
			return ""
		}
		what := string(m[1]) + string(m[2])
		if what == "path exploration started" {
			what = "exploring"
		}
		if u := gwUplink.FindSubmatch(line); u != nil && (what == "uplink down" || what == "uplink up") {
			what += " " + string(u[1])
		}
		return what
	case SourceVRRP:
		if m := vrrpMsg.FindSubmatch(line); m != nil {
			return string(m[1])
		}
	}
	return ""
}
