package fastpath

// Verdict is what the program did with a packet: one of the Fast* kinds
// (handled in the kernel) or a reason it left the packet to the TUN path.
// The values are those of enum fp_verdict in bpf/fastpath.c.
type Verdict uint32

// The verdicts, in the order of enum fp_verdict.
const (
	FastOutShim  = Verdict(fastpathFpVerdictFP_FAST_OUT_SHIM)
	FastInStrip  = Verdict(fastpathFpVerdictFP_FAST_IN_STRIP)
	FastOutPass  = Verdict(fastpathFpVerdictFP_FAST_OUT_PASS)
	FastInPass   = Verdict(fastpathFpVerdictFP_FAST_IN_PASS)
	TUNNotIPv6   = Verdict(fastpathFpVerdictFP_TUN_NOT_IPV6)
	TUNNoContext = Verdict(fastpathFpVerdictFP_TUN_NO_CONTEXT)
	TUNExtHeader = Verdict(fastpathFpVerdictFP_TUN_EXT_HEADER)
	TUNControl   = Verdict(fastpathFpVerdictFP_TUN_CONTROL)
	TUNTag       = Verdict(fastpathFpVerdictFP_TUN_TAG)
	TUNICMPError = Verdict(fastpathFpVerdictFP_TUN_ICMP_ERROR)
	TUNTCPSyn    = Verdict(fastpathFpVerdictFP_TUN_TCP_SYN)
	TUNGSO       = Verdict(fastpathFpVerdictFP_TUN_GSO)
	TUNTooBig    = Verdict(fastpathFpVerdictFP_TUN_TOO_BIG)
	TUNFallback  = Verdict(fastpathFpVerdictFP_TUN_FALLBACK)
	TUNHopLimit  = Verdict(fastpathFpVerdictFP_TUN_HOP_LIMIT)
	TUNNoRoute   = Verdict(fastpathFpVerdictFP_TUN_NO_ROUTE)
	TUNNoNeigh   = Verdict(fastpathFpVerdictFP_TUN_NO_NEIGH)
	TUNHelper    = Verdict(fastpathFpVerdictFP_TUN_HELPER)
	DropHelper   = Verdict(fastpathFpVerdictFP_DROP_HELPER)
	NumVerdicts  = Verdict(fastpathFpVerdictFP_NUM_VERDICTS)
)

var verdictNames = [NumVerdicts]string{
	"fast_out_shim", "fast_in_strip", "fast_out_pass", "fast_in_pass",
	"tun_not_ipv6", "tun_no_context", "tun_ext_header", "tun_control", "tun_tag",
	"tun_icmp_error", "tun_tcp_syn", "tun_gso", "tun_too_big", "tun_fallback",
	"tun_hop_limit", "tun_no_route", "tun_no_neigh", "tun_helper", "drop_helper",
}

// String returns the verdict's metric label, e.g. "fast_out_shim".
func (v Verdict) String() string {
	if v < NumVerdicts {
		return verdictNames[v]
	}
	return "invalid"
}

// Fast reports whether the packet was forwarded by the program.
func (v Verdict) Fast() bool { return v <= FastInPass }

// Path is "fast", "tun" or "drop", the path label of the metrics.
func (v Verdict) Path() string {
	switch {
	case v.Fast():
		return "fast"
	case v == DropHelper:
		return "drop"
	}
	return "tun"
}

// Stat counts packets and bytes (IPv6 header included, as received).
type Stat struct{ Packets, Bytes uint64 }
