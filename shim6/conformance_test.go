package shim6_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/shim6gw/shim6gw/internal/pcap"
	"github.com/shim6gw/shim6gw/shim6"
)

// Conformance against Wireshark's dissector. tshark 4.0
// reads control-message fields after the Type octet one octet early
// (operations guide §6.6), so for control messages only the Type, P bit,
// length and checksum verdict are compared; the payload header is decoded
// correctly and is compared in full, with the transport ports inside.

// pdmlNode is a PDML <proto> or <field>; both nest (extension headers
// and the transport appear as protos inside the ipv6 proto).
type pdmlNode struct {
	XMLName  xml.Name
	Name     string     `xml:"name,attr"`
	Show     string     `xml:"show,attr"`
	ShowName string     `xml:"showname,attr"`
	Nodes    []pdmlNode `xml:",any"`
}

type pdmlPacket struct {
	Nodes []pdmlNode `xml:",any"`
}

type pdml struct {
	Packets []pdmlPacket `xml:"packet"`
}

// walk returns the first node (depth first) for which match is true.
func walk(ns []pdmlNode, match func(pdmlNode) bool) (pdmlNode, bool) {
	for _, n := range ns {
		if match(n) {
			return n, true
		}
		if m, ok := walk(n.Nodes, match); ok {
			return m, true
		}
	}
	return pdmlNode{}, false
}

// find returns the first field called name anywhere in the packet.
func (p pdmlPacket) find(name string) (pdmlNode, bool) {
	return walk(p.Nodes, func(n pdmlNode) bool { return n.XMLName.Local == "field" && n.Name == name })
}

func (p pdmlPacket) has(proto string) bool {
	_, ok := walk(p.Nodes, func(n pdmlNode) bool { return n.XMLName.Local == "proto" && n.Name == proto })
	return ok
}

func (p pdmlPacket) show(name string) string {
	f, ok := p.find(name)
	if !ok {
		return "<absent>"
	}
	return f.Show
}

func requireTshark(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("tshark")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("tshark not installed, but CI is set (CI installs it)")
		}
		t.Skip("tshark not installed; set CI=1 to make this a failure")
	}
	return path
}

func runTshark(t *testing.T, tshark, file string) []pdmlPacket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, tshark, "-n", "-r", file, "-T", "pdml")
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("tshark: %v\n%s", err, stderr.String())
	}
	var doc pdml
	if err := xml.Unmarshal(out.Bytes(), &doc); err != nil {
		t.Fatalf("tshark pdml: %v", err)
	}
	return doc.Packets
}

func writePcap(t *testing.T, pkts [][]byte) string {
	t.Helper()
	name := filepath.Join(t.TempDir(), "shim6.pcap")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	w, err := pcap.NewWriter(f, pcap.LinkTypeIPv6)
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range pkts {
		if err := w.WritePacket(time.Unix(1700000000+int64(i), 0), p); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return name
}

// conformanceMessages returns one realistic message of every control type.
func conformanceMessages() []msgVal {
	rv := optVal{Type: shim6.OptResponderValidator, Raw: []byte("0123456789abcdefghij")}
	pds := make([]byte, 125)
	for i := range pds {
		pds[i] = byte(i * 7)
	}
	ll := optVal{Type: shim6.OptLocatorList, Gen: 0x5eed, Methods: []uint8{shim6.VerifyHBA, shim6.VerifyHBA}, Locs: []netip.Addr{locA, locB}}
	lp := optVal{Type: shim6.OptLocatorPreferences, Gen: 0x5eed, ElemLen: 1, Prefs: []shim6.LocatorPreference{{}, {Flags: shim6.FlagBroken}}}
	up := optVal{Type: shim6.OptULIDPair, Sender: locA, Receiver: netip.MustParseAddr("2001:db8:c:1::20")}
	pdsOpt := optVal{Type: shim6.OptCGAParameterDataStructure, Raw: pds}
	ka := optVal{Type: shim6.OptKeepaliveTimeout, KATimeout: 30}
	recs := []shim6.ProbeRecord{
		{Src: locA, Dst: netip.MustParseAddr("2001:db8:c:1::20"), Nonce: 0x01020304, Data: 9},
		{Src: netip.MustParseAddr("2001:db8:d:1::20"), Dst: locB, Nonce: 0x0a0b0c0d, Data: 1},
	}
	quoted := shim6.AppendIPv6Control(nil, locA, locB, encode(nil, msgVal{Type: shim6.TypeUpdateRequest, Tag: ctR, Nonce1: 3}))
	return []msgVal{
		{Type: shim6.TypeI1, Tag: ctI, Nonce1: 0x11223344, Opts: []optVal{up, {Type: shim6.OptForkedInstanceID, FII: 1}}},
		{Type: shim6.TypeR1, Nonce1: 0x11223344, Nonce2: 0x55667788, Opts: []optVal{rv}},
		{Type: shim6.TypeI2, Tag: ctI, Nonce1: 0x11223345, Nonce2: 0x55667788, Opts: []optVal{rv, up, ll, lp, pdsOpt, ka}},
		{Type: shim6.TypeR2, Tag: ctR, Nonce1: 0x11223345, Opts: []optVal{ll, pdsOpt}},
		{Type: shim6.TypeR1bis, Tag: ctR, Nonce2: 0x99aabbcc, Opts: []optVal{rv}},
		{Type: shim6.TypeI2bis, Tag: ctI, Nonce1: 7, Nonce2: 0x99aabbcc, Tag2: ctR, Opts: []optVal{rv, up, ll, pdsOpt}},
		{Type: shim6.TypeUpdateRequest, Tag: ctR, Nonce1: 0xfeedf00d, Opts: []optVal{ll, lp}},
		{Type: shim6.TypeUpdateAck, Tag: ctI, Nonce1: 0xfeedf00d},
		{Type: shim6.TypeKeepalive, Tag: ctR},
		{Type: shim6.TypeProbe, Tag: ctR, Sta: shim6.StaExploring, Sent: recs[:1], Rcvd: recs[1:]},
		{Type: shim6.TypeError, Code: shim6.CodeCriticalOption, Pointer: 56, Quoted: quoted},
	}
}

// payloadPacket wraps a transport header in IPv6 + Shim6 payload header.
func payloadPacket(next uint8, tag shim6.ContextTag, transport []byte) []byte {
	p := make([]byte, shim6.IPv6HeaderLen+shim6.PayloadHeaderLen)
	shim6.PutIPv6Header(p, locA, locB, shim6.ProtocolNumber, shim6.PayloadHeaderLen+len(transport))
	shim6.PutPayloadHeader(p[shim6.IPv6HeaderLen:], next, tag)
	return append(p, transport...)
}

func TestConformanceTshark(t *testing.T) {
	tshark := requireTshark(t)
	msgs := conformanceMessages()
	var pkts [][]byte
	for _, v := range msgs {
		pkts = append(pkts, shim6.AppendIPv6Control(nil, locA, locB, encode(nil, v)))
	}
	udp := []byte{0xc3, 0x50, 0x11, 0x5c, 0x00, 0x0c, 0x00, 0x00, 'p', 'i', 'n', 'g'}                 // 50000 → 4444
	tcp := []byte{0xc0, 0x00, 0x01, 0xbb, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0} // 49152 → 443 SYN
	pkts = append(pkts, payloadPacket(17, ctR, udp), payloadPacket(6, ctI, tcp))
	got := runTshark(t, tshark, writePcap(t, pkts))
	if len(got) != len(pkts) {
		t.Fatalf("tshark decoded %d packets, wrote %d", len(got), len(pkts))
	}

	type ctlView struct{ Shim6, Next, P, Type, Len, ChecksumStatus string }
	for i, v := range msgs {
		t.Run(v.Type.String(), func(t *testing.T) {
			p := got[i]
			msgLen := len(pkts[i]) - shim6.IPv6HeaderLen
			want := ctlView{"true", "59", "0", fmt.Sprint(uint8(v.Type)), fmt.Sprint(msgLen), "1"}
			gotv := ctlView{fmt.Sprint(p.has("shim6")), p.show("shim6.nxt"), p.show("shim6.p"), p.show("shim6.type"), p.show("shim6.len_oct"), p.show("shim6.checksum.status")}
			if diff := cmp.Diff(want, gotv); diff != "" {
				t.Errorf("tshark view (-want +got):\n%s", diff)
			}
			if f, _ := p.find("shim6.checksum.status"); !strings.Contains(f.ShowName, "Good") {
				t.Errorf("checksum status %q, want Good", f.ShowName)
			}
		})
	}

	type payView struct{ Shim6, P, Next, Len, Tag, SrcPort, DstPort string }
	payloads := []struct {
		name  string
		want  payView
		proto string
	}{
		{"payload UDP", payView{"true", "1", "17", "8", "01 23 45 67 89 ab", "50000", "4444"}, "udp"},
		{"payload TCP", payView{"true", "1", "6", "8", "2a 5b 3c 4d 5e 6f", "49152", "443"}, "tcp"},
	}
	for j, pc := range payloads {
		t.Run(pc.name, func(t *testing.T) {
			p := got[len(msgs)+j]
			ct, _ := p.find("shim6.ct")
			_, tag, _ := strings.Cut(ct.ShowName, ": ")
			gotv := payView{fmt.Sprint(p.has("shim6")), p.show("shim6.p"), p.show("shim6.nxt"), p.show("shim6.len_oct"),
				strings.ToLower(tag), p.show(pc.proto + ".srcport"), p.show(pc.proto + ".dstport")}
			if diff := cmp.Diff(pc.want, gotv); diff != "" {
				t.Errorf("tshark view (-want +got):\n%s", diff)
			}
			if !strings.HasPrefix(ct.ShowName, "Receiver Context Tag") {
				t.Errorf("context tag field %q", ct.ShowName)
			}
		})
	}

	t.Run("corrupt checksum", func(t *testing.T) {
		bad := append([]byte{}, pkts[0]...)
		bad[shim6.IPv6HeaderLen+15] ^= 0x5a // a nonce octet; checksum left stale
		if _, err := shim6.ParseMessage(bad[shim6.IPv6HeaderLen:]); !errors.Is(err, shim6.ErrBadChecksum) {
			t.Errorf("ParseMessage: %v, want ErrBadChecksum", err)
		}
		res := runTshark(t, tshark, writePcap(t, [][]byte{bad}))
		if len(res) != 1 {
			t.Fatalf("%d packets", len(res))
		}
		f, ok := res[0].find("shim6.checksum.status")
		if !ok || f.Show != "0" || !strings.Contains(f.ShowName, "Bad") {
			t.Errorf("tshark checksum status %q (%q), want Bad", f.Show, f.ShowName)
		}
	})
}
