package shim6_test

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/shim6"
)

// This file maps control messages to and from plain values so tests can
// build → parse → compare, and fuzz targets can parse → rebuild → parse.

// optVal is one option as values. Raw holds the contents of opaque and
// unknown options only; known structured options use the typed fields.
type optVal struct {
	Type     shim6.OptionType
	Critical bool
	Raw      []byte

	Gen              uint32
	Methods          []uint8
	Locs             []netip.Addr
	ElemLen          int
	Prefs            []shim6.LocatorPreference
	Sender, Receiver netip.Addr
	FII              uint32
	KATimeout        uint16
}

// msgVal is one control message as values; which fields matter depends on
// Type (see decode).
type msgVal struct {
	Type           shim6.Type
	Tag, Tag2      shim6.ContextTag
	Nonce1, Nonce2 uint32
	Sta            shim6.Sta
	Sent, Rcvd     []shim6.ProbeRecord
	Code           shim6.ErrorCode
	Pointer        uint16
	Quoted         []byte
	Opts           []optVal
}

var cmpOpts = cmp.Options{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
}

func decodeOpt(o shim6.Option) optVal {
	v := optVal{Type: o.Type(), Critical: o.Critical()}
	switch v.Type {
	case shim6.OptLocatorList:
		l, ok := o.LocatorList()
		if !ok {
			panic("LocatorList view refused a parsed option")
		}
		v.Gen = l.Generation()
		for i := 0; i < l.Count(); i++ {
			v.Methods = append(v.Methods, l.Method(i))
			v.Locs = append(v.Locs, l.Locator(i))
		}
	case shim6.OptLocatorPreferences:
		p, ok := o.LocatorPreferences()
		if !ok {
			panic("LocatorPreferences view refused a parsed option")
		}
		v.Gen, v.ElemLen = p.Generation(), p.ElementLen()
		for i := 0; i < p.Count(); i++ {
			v.Prefs = append(v.Prefs, p.Element(i))
		}
	case shim6.OptULIDPair:
		s, r, ok := o.ULIDPair()
		if !ok {
			panic("ULIDPair view refused a parsed option")
		}
		v.Sender, v.Receiver = s, r
	case shim6.OptForkedInstanceID:
		f, ok := o.FII()
		if !ok {
			panic("FII view refused a parsed option")
		}
		v.FII = f
	case shim6.OptKeepaliveTimeout:
		k, ok := o.KeepaliveTimeout()
		if !ok {
			panic("KeepaliveTimeout view refused a parsed option")
		}
		v.KATimeout = k
	default:
		v.Raw = append([]byte{}, o.Contents()...)
	}
	return v
}

func decode(m shim6.Message) msgVal {
	v := msgVal{Type: m.Type()}
	switch v.Type {
	case shim6.TypeI1:
		v.Tag, v.Nonce1 = shim6.I1(m).InitiatorTag(), shim6.I1(m).InitiatorNonce()
	case shim6.TypeR1:
		v.Nonce1, v.Nonce2 = shim6.R1(m).InitiatorNonce(), shim6.R1(m).ResponderNonce()
	case shim6.TypeI2:
		x := shim6.I2(m)
		v.Tag, v.Nonce1, v.Nonce2 = x.InitiatorTag(), x.InitiatorNonce(), x.ResponderNonce()
	case shim6.TypeR2:
		v.Tag, v.Nonce1 = shim6.R2(m).ResponderTag(), shim6.R2(m).InitiatorNonce()
	case shim6.TypeR1bis:
		v.Tag, v.Nonce2 = shim6.R1bis(m).PacketTag(), shim6.R1bis(m).ResponderNonce()
	case shim6.TypeI2bis:
		x := shim6.I2bis(m)
		v.Tag, v.Nonce1, v.Nonce2, v.Tag2 = x.InitiatorTag(), x.InitiatorNonce(), x.ResponderNonce(), x.PacketTag()
	case shim6.TypeUpdateRequest:
		v.Tag, v.Nonce1 = shim6.UpdateRequest(m).ReceiverTag(), shim6.UpdateRequest(m).RequestNonce()
	case shim6.TypeUpdateAck:
		v.Tag, v.Nonce1 = shim6.UpdateAck(m).ReceiverTag(), shim6.UpdateAck(m).RequestNonce()
	case shim6.TypeKeepalive:
		v.Tag = shim6.Keepalive(m).ReceiverTag()
	case shim6.TypeProbe:
		p := shim6.Probe(m)
		v.Tag, v.Sta = p.ReceiverTag(), p.Sta()
		for i := 0; i < p.Psent(); i++ {
			v.Sent = append(v.Sent, p.Sent(i))
		}
		for i := 0; i < p.Precvd(); i++ {
			v.Rcvd = append(v.Rcvd, p.Rcvd(i))
		}
	case shim6.TypeError:
		e := shim6.ErrorMessage(m)
		v.Code, v.Pointer, v.Quoted = e.Code(), e.Pointer(), append([]byte{}, e.Packet()...)
	}
	it := m.Options()
	for o, ok := it.Next(); ok; o, ok = it.Next() {
		v.Opts = append(v.Opts, decodeOpt(o))
	}
	return v
}

func encodeOpt(dst []byte, o optVal) []byte {
	start := len(dst)
	switch o.Type {
	case shim6.OptLocatorList:
		dst = shim6.AppendLocatorList(dst, o.Gen, o.Methods, o.Locs)
	case shim6.OptLocatorPreferences:
		if o.ElemLen <= 3 {
			dst = shim6.AppendLocatorPreferences(dst, o.Gen, o.ElemLen, o.Prefs)
			break
		}
		c := binary.BigEndian.AppendUint32(nil, o.Gen)
		c = append(c, byte(o.ElemLen))
		for _, p := range o.Prefs {
			e := make([]byte, o.ElemLen)
			e[0], e[1], e[2] = p.Flags, p.Priority, p.Weight
			c = append(c, e...)
		}
		dst = shim6.AppendOption(dst, o.Type, false, c)
	case shim6.OptULIDPair:
		dst = shim6.AppendULIDPair(dst, o.Sender, o.Receiver)
	case shim6.OptForkedInstanceID:
		dst = shim6.AppendFII(dst, o.FII)
	case shim6.OptKeepaliveTimeout:
		dst = shim6.AppendKeepaliveTimeout(dst, o.KATimeout)
	case shim6.OptResponderValidator:
		dst = shim6.AppendResponderValidator(dst, o.Raw)
	case shim6.OptCGAParameterDataStructure:
		dst = shim6.AppendCGAPDS(dst, o.Raw)
	case shim6.OptCGASignature:
		dst = shim6.AppendCGASignature(dst, o.Raw)
	default:
		dst = shim6.AppendOption(dst, o.Type, o.Critical, o.Raw)
	}
	if o.Critical {
		dst[start+1] |= 1
	}
	return dst
}

// encode appends v as a finished message.
func encode(dst []byte, v msgVal) []byte {
	start := len(dst)
	switch v.Type {
	case shim6.TypeI1:
		dst = shim6.AppendI1(dst, v.Tag, v.Nonce1)
	case shim6.TypeR1:
		dst = shim6.AppendR1(dst, v.Nonce1, v.Nonce2)
	case shim6.TypeI2:
		dst = shim6.AppendI2(dst, v.Tag, v.Nonce1, v.Nonce2)
	case shim6.TypeR2:
		dst = shim6.AppendR2(dst, v.Tag, v.Nonce1)
	case shim6.TypeR1bis:
		dst = shim6.AppendR1bis(dst, v.Tag, v.Nonce2)
	case shim6.TypeI2bis:
		dst = shim6.AppendI2bis(dst, v.Tag, v.Nonce1, v.Nonce2, v.Tag2)
	case shim6.TypeUpdateRequest:
		dst = shim6.AppendUpdateRequest(dst, v.Tag, v.Nonce1)
	case shim6.TypeUpdateAck:
		dst = shim6.AppendUpdateAck(dst, v.Tag, v.Nonce1)
	case shim6.TypeKeepalive:
		dst = shim6.AppendKeepalive(dst, v.Tag)
	case shim6.TypeProbe:
		dst = shim6.AppendProbe(dst, v.Tag, v.Sta, v.Sent, v.Rcvd)
	case shim6.TypeError:
		return shim6.AppendError(dst, v.Code, v.Pointer, v.Quoted)
	default:
		panic(fmt.Sprintf("encode: type %v", v.Type))
	}
	for _, o := range v.Opts {
		dst = encodeOpt(dst, o)
	}
	if err := shim6.FinishMessage(dst[start:]); err != nil {
		panic(err)
	}
	return dst
}

// Random values for property tests.

func randTag(r *rand.Rand) shim6.ContextTag {
	return shim6.ContextTag(r.Uint64() & uint64(shim6.MaxTag))
}

func randAddr(r *rand.Rand) netip.Addr {
	var b [16]byte
	binary.BigEndian.PutUint64(b[:], r.Uint64())
	binary.BigEndian.PutUint64(b[8:], r.Uint64())
	return netip.AddrFrom16(b)
}

func randBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func randRecords(r *rand.Rand, n int) []shim6.ProbeRecord {
	var rs []shim6.ProbeRecord
	for i := 0; i < n; i++ {
		rs = append(rs, shim6.ProbeRecord{Src: randAddr(r), Dst: randAddr(r), Nonce: r.Uint32(), Data: r.Uint32()})
	}
	return rs
}

// randOpt returns a random option of type t (known) with small contents.
func randOpt(r *rand.Rand, t shim6.OptionType) optVal {
	o := optVal{Type: t}
	switch t {
	case shim6.OptLocatorList:
		o.Gen = r.Uint32()
		n := r.IntN(12)
		for i := 0; i < n; i++ {
			o.Methods = append(o.Methods, uint8(r.IntN(256)))
			o.Locs = append(o.Locs, randAddr(r))
		}
	case shim6.OptLocatorPreferences:
		o.Gen, o.ElemLen = r.Uint32(), 1+r.IntN(3)
		for i, n := 0, r.IntN(12); i < n; i++ {
			p := shim6.LocatorPreference{Flags: uint8(r.Uint32())}
			if o.ElemLen >= 2 {
				p.Priority = uint8(r.Uint32())
			}
			if o.ElemLen >= 3 {
				p.Weight = uint8(r.Uint32())
			}
			o.Prefs = append(o.Prefs, p)
		}
	case shim6.OptULIDPair:
		o.Sender, o.Receiver = randAddr(r), randAddr(r)
	case shim6.OptForkedInstanceID:
		o.FII = r.Uint32()
	case shim6.OptKeepaliveTimeout:
		o.KATimeout = uint16(r.Uint32())
	default:
		o.Raw = randBytes(r, r.IntN(40))
	}
	return o
}

var allTypes = []shim6.Type{
	shim6.TypeI1, shim6.TypeR1, shim6.TypeI2, shim6.TypeR2, shim6.TypeR1bis, shim6.TypeI2bis,
	shim6.TypeUpdateRequest, shim6.TypeUpdateAck, shim6.TypeKeepalive, shim6.TypeProbe, shim6.TypeError,
}

var allOptTypes = []shim6.OptionType{
	shim6.OptResponderValidator, shim6.OptLocatorList, shim6.OptLocatorPreferences,
	shim6.OptCGAParameterDataStructure, shim6.OptCGASignature, shim6.OptULIDPair,
	shim6.OptForkedInstanceID, shim6.OptKeepaliveTimeout,
}

// randMsg returns a random message of type t with random options (none for
// Error, which has no option area).
func randMsg(r *rand.Rand, t shim6.Type) msgVal {
	v := msgVal{Type: t, Tag: randTag(r), Tag2: randTag(r), Nonce1: r.Uint32(), Nonce2: r.Uint32()}
	switch t {
	case shim6.TypeI1, shim6.TypeR2, shim6.TypeUpdateRequest, shim6.TypeUpdateAck:
		v.Nonce2 = 0
	case shim6.TypeR1bis:
		v.Nonce1 = 0
	case shim6.TypeKeepalive:
		v.Nonce1, v.Nonce2 = 0, 0
	case shim6.TypeProbe:
		v.Nonce1, v.Nonce2 = 0, 0
		v.Sta = shim6.Sta(r.IntN(3))
		v.Sent, v.Rcvd = randRecords(r, 1+r.IntN(15)), randRecords(r, r.IntN(16))
	case shim6.TypeError:
		return msgVal{Type: t, Code: shim6.ErrorCode(r.IntN(128)), Pointer: uint16(r.Uint32()),
			Quoted: randBytes(r, 8*(1+r.IntN(20)))}
	}
	if t == shim6.TypeR1 {
		v.Tag = 0
	}
	if t != shim6.TypeI2bis {
		v.Tag2 = 0
	}
	for i, n := 0, r.IntN(4); i < n; i++ {
		v.Opts = append(v.Opts, randOpt(r, allOptTypes[r.IntN(len(allOptTypes))]))
	}
	if r.IntN(4) == 0 { // an unknown, non-critical option in the mix
		v.Opts = append(v.Opts, optVal{Type: shim6.OptionType(100 + r.IntN(1000)), Raw: randBytes(r, r.IntN(20))})
	}
	return v
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(1, 5533)) }
