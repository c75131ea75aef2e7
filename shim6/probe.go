package shim6

import (
	"encoding/binary"
	"net/netip"
)

// ProbeRecordLen is the size of one probe report record (RFC 5534 §5.2).
const ProbeRecordLen = 40

// MaxProbeRecords is the most records of each kind a Probe can carry: the
// Psent and Precvd counters are 4 bits wide (RFC 5534 §5.2).
const MaxProbeRecords = 15

const probeRecordsOff = 16

// ProbeRecord is one sent- or received-probe report (RFC 5534 §5.2):
//
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	+                  Probe Source (128 bits)                      +
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	+               Probe Destination (128 bits)                    +
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Probe Nonce                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          Probe Data                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type ProbeRecord struct {
	Src, Dst netip.Addr
	Nonce    uint32
	Data     uint32
}

func getProbeRecord(b []byte) ProbeRecord {
	return ProbeRecord{
		Src:   netip.AddrFrom16([16]byte(b[0:16])),
		Dst:   netip.AddrFrom16([16]byte(b[16:32])),
		Nonce: binary.BigEndian.Uint32(b[32:]),
		Data:  binary.BigEndian.Uint32(b[36:]),
	}
}

func appendProbeRecord(dst []byte, r ProbeRecord) []byte {
	s, d := r.Src.As16(), r.Dst.As16()
	dst = append(dst, s[:]...)
	dst = append(dst, d[:]...)
	dst = binary.BigEndian.AppendUint32(dst, r.Nonce)
	return binary.BigEndian.AppendUint32(dst, r.Data)
}

// Probe is a Probe message (RFC 5534 §5.2):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|       59      |  Hdr Ext Len  |0|  Type = 67  |   Reserved  |0|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|            Checksum           |R|                             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+  Receiver Context Tag       +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	| Precvd| Psent |Sta|                  Reserved2                |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~          Psent sent-probe records, then Precvd received       ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	~                           Options                             ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Probe Message

// ReceiverTag is the receiver's context tag (octets 6–11).
func (p Probe) ReceiverTag() ContextTag { return getTag(p[6:12]) }

// Precvd is the number of received-probe records.
func (p Probe) Precvd() int { return int(p[12] >> 4) }

// Psent is the number of sent-probe records (at least 1).
func (p Probe) Psent() int { return int(p[12] & 0x0f) }

// Sta is the sender's REAP state.
func (p Probe) Sta() Sta { return Sta(p[13] >> 6) }

// Sent returns sent-probe record i; record 0 describes this probe.
func (p Probe) Sent(i int) ProbeRecord {
	off := probeRecordsOff + ProbeRecordLen*i
	return getProbeRecord(p[off : off+ProbeRecordLen])
}

// Rcvd returns received-probe record i.
func (p Probe) Rcvd(i int) ProbeRecord {
	off := probeRecordsOff + ProbeRecordLen*(p.Psent()+i)
	return getProbeRecord(p[off : off+ProbeRecordLen])
}

// checkProbe checks Psent ≥ 1, Sta ≠ 3 and that the records fit.
func checkProbe(m Message) error {
	p := Probe(m)
	if p.Psent() == 0 {
		return &ParseError{Offset: 12, Err: ErrBadField}
	}
	if p.Sta() > StaInboundOk {
		return &ParseError{Offset: 13, Err: ErrBadField}
	}
	if probeRecordsOff+ProbeRecordLen*(p.Psent()+p.Precvd()) > len(m) {
		return &ParseError{Offset: 12, Err: ErrBadLength}
	}
	return nil
}

// AppendProbe appends a Probe with the given records (sent[0] describes
// this probe) and finishes it. Append options with the option appenders
// and call FinishMessage again. It panics if len(sent) is not 1..15,
// len(rcvd) > 15 or sta > StaInboundOk: those are programmer errors.
func AppendProbe(dst []byte, tag ContextTag, sta Sta, sent, rcvd []ProbeRecord) []byte {
	if len(sent) < 1 || len(sent) > MaxProbeRecords || len(rcvd) > MaxProbeRecords || sta > StaInboundOk {
		panic("shim6: AppendProbe: bad record count or Sta")
	}
	start := len(dst)
	dst = appendHeader(dst, TypeProbe, 0)
	dst = appendTag(dst, tag)
	dst = append(dst, byte(len(rcvd))<<4|byte(len(sent)), byte(sta)<<6, 0, 0)
	for _, r := range sent {
		dst = appendProbeRecord(dst, r)
	}
	for _, r := range rcvd {
		dst = appendProbeRecord(dst, r)
	}
	finish(dst[start:])
	return dst
}
