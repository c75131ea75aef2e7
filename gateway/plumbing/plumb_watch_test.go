package plumbing

import (
	"encoding/binary"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// rtmsg builds a route notification: rtmsg with rtm_table = small, and an
// RTA_TABLE attribute = table when table ≥ 0.
func rtmsg(typ uint16, small uint8, table int) syscall.NetlinkMessage {
	b := make([]byte, unix.SizeofRtMsg)
	b[0] = unix.AF_INET6
	b[4] = small // rtm_table
	if table >= 0 {
		attr := make([]byte, 8)
		binary.NativeEndian.PutUint16(attr[0:], 8)
		binary.NativeEndian.PutUint16(attr[2:], unix.RTA_TABLE)
		binary.NativeEndian.PutUint32(attr[4:], uint32(table))
		b = append(b, attr...)
	}
	return syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: typ}, Data: b}
}

func TestPlumbWatcherRelevantNotifications(t *testing.T) {
	w := NewPlumbWatcher(nil, PlumbWatchOptions{FirstTable: 15000, LastTable: 15011})
	for _, tc := range []struct {
		name string
		m    syscall.NetlinkMessage
		want bool
	}{
		{"rule deleted", syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_DELRULE}}, true},
		{"rule added", syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWRULE}}, false},
		{"link appeared or changed", syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_NEWLINK}}, true},
		{"link removed", syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_DELLINK}}, false},
		{"route deleted from an uplink table", rtmsg(unix.RTM_DELROUTE, unix.RT_TABLE_COMPAT, 15003), true},
		{"route deleted from the last table", rtmsg(unix.RTM_DELROUTE, unix.RT_TABLE_COMPAT, 15011), true},
		{"route deleted past the range", rtmsg(unix.RTM_DELROUTE, unix.RT_TABLE_COMPAT, 15012), false},
		{"route deleted from main", rtmsg(unix.RTM_DELROUTE, unix.RT_TABLE_MAIN, -1), false},
		{"route added to an uplink table", rtmsg(unix.RTM_NEWROUTE, unix.RT_TABLE_COMPAT, 15003), false},
		{"short route message", syscall.NetlinkMessage{Header: syscall.NlMsghdr{Type: unix.RTM_DELROUTE}, Data: []byte{10}}, false},
	} {
		if got := w.relevant(tc.m); got != tc.want {
			t.Errorf("%s: relevant = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// FuzzRouteTable: any bytes give a table number or -1, never a panic.
func FuzzRouteTable(f *testing.F) {
	f.Add(rtmsg(unix.RTM_DELROUTE, unix.RT_TABLE_COMPAT, 15003).Data)
	f.Add([]byte{})
	f.Add(make([]byte, unix.SizeofRtMsg+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		if got := routeTable(b); got < -1 {
			t.Fatalf("routeTable = %d", got)
		}
	})
}
