package rewrite

// Names are fixed strings so they can be metric labels (a closed set).

var dropReasonNames = [NumDropReasons]string{
	NotDropped:           "not_dropped",
	DropMalformed:        "malformed",
	DropNoHeadroom:       "no_headroom",
	DropTooBig:           "too_big",
	DropUnknownTag:       "unknown_tag",
	DropLocatorMismatch:  "locator_mismatch",
	DropBadPayloadHeader: "bad_payload_header",
	DropFragmentedShim:   "fragmented_shim",
}

// String returns the snake_case label of the reason.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropReasonNames[r]
	}
	return "invalid"
}

var pathKindNames = [NumPathKinds]string{
	PathPassthrough:  "passthrough",
	PathOutboundShim: "outbound_shim",
	PathInboundShim:  "inbound_shim",
	PathControl:      "control",
	PathFallbackOut:  "fallback_out",
	PathFallbackIn:   "fallback_in",
	PathICMPError:    "icmp_error",
	PathTooBig:       "too_big",
	PathDropped:      "dropped",
}

// String returns the snake_case label of the path kind.
func (k PathKind) String() string {
	if k < NumPathKinds {
		return pathKindNames[k]
	}
	return "invalid"
}

// String returns the notice kind's name.
func (k NoticeKind) String() string {
	switch k {
	case NoNotice:
		return "none"
	case NoticeTrafficSeen:
		return "traffic_seen"
	case NoticeUnknownTag:
		return "unknown_tag"
	case NoticePathError:
		return "path_error"
	}
	return "invalid"
}
