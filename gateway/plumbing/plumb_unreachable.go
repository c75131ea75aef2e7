package plumbing

// UnreachableMetric is the metric of the `unreachable default` that ends
// each uplink table: the highest there is, so the uplink's own default
// route (metric 1024) wins whenever it is installed.
const UnreachableMetric = 1<<32 - 1

// unreachableRoutes returns one `unreachable default` per uplink table.
// Without it, a packet from P_X whose uplink is down (its default route
// gone with the interface) finds nothing in table X and falls through to
// the next rule, the main table, and leaves by another provider, whose
// ingress filter (BCP 38) drops it silently. With it the lookup ends in
// table X and the host gets an ICMPv6 unreachable at once.
func (c PlumbConfig) unreachableRoutes() []Route {
	out := make([]Route, len(c.Uplinks))
	for i := range c.Uplinks {
		out[i] = Route{Table: c.Rules.UplinkTable(i), Dst: defaultRoute, Unreachable: true,
			Metric: UnreachableMetric, Protocol: c.Rules.Protocol}
	}
	return out
}
