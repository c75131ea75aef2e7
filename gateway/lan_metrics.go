package gateway

import (
	"encoding/json"
	"net/http"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/shim6gw/shim6gw/lan/dhcp6"
	"github.com/shim6gw/shim6gw/lan/ra"
	"github.com/shim6gw/shim6gw/lan/slaac"
)

// lanDesc builds the descriptors of the LAN services' metrics.
func lanDesc(subsystem, name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(prometheus.BuildFQName("shim6gw", subsystem, name), help, labels, nil)
}

var (
	dhcpLeases      = lanDesc("dhcpv6", "leases", "Bindings bound and not expired.")
	dhcpOffers      = lanDesc("dhcpv6", "offers", "Entries held for an Advertise.")
	dhcpDeclined    = lanDesc("dhcpv6", "declined_entries", "Entries out of the pool after a Decline.")
	dhcpPool        = lanDesc("dhcpv6", "pool_size", "Book entries the DHCPv6 server hands out.")
	dhcpReplies     = lanDesc("dhcpv6", "replies_total", "Advertise and Reply messages sent.")
	dhcpDropped     = lanDesc("dhcpv6", "dropped_messages_total", "Messages dropped without answer, by reason.", "reason")
	dhcpRefused     = lanDesc("dhcpv6", "refusals_total", "IA_NAs answered without an address, by reason (pool_exhausted is pool exhaustion).", "reason")
	dhcpPersistErrs = lanDesc("dhcpv6", "persist_errors_total", "Lease file writes that failed.")

	raSent    = lanDesc("ra", "sent_total", "Router Advertisements sent.")
	raSendErr = lanDesc("ra", "send_errors_total", "Router Advertisements that could not be sent.")
	raRS      = lanDesc("ra", "solicitations_total", "Valid Router Solicitations received.")
	raNS      = lanDesc("ra", "neighbor_solicitations_total", "Valid Neighbor Solicitations received.")
	raDropped = lanDesc("ra", "dropped_messages_total", "RS and NS messages dropped, by reason.", "reason")

	slaacMappings     = lanDesc("slaac", "mappings", "Host addresses mapped to book entries.")
	slaacPool         = lanDesc("slaac", "pool_size", "Book entries SLAAC translation maps to.")
	slaacTranslated   = lanDesc("slaac", "translated_packets_total", "Packets translated, by direction.", "direction")
	slaacDropped      = lanDesc("slaac", "dropped_packets_total", "Packets of the translation dropped (no mapping), by direction.", "direction")
	slaacCreated      = lanDesc("slaac", "mappings_created_total", "Mappings created.")
	slaacExpired      = lanDesc("slaac", "mappings_expired_total", "Mappings expired after idle_timeout.")
	slaacRefused      = lanDesc("slaac", "refusals_total", "Host addresses refused a mapping, by reason.", "reason")
	slaacPersistErrs  = lanDesc("slaac", "persist_errors_total", "State file writes that failed.")
	lanCollectorDescs = []*prometheus.Desc{dhcpLeases, dhcpOffers, dhcpDeclined, dhcpPool, dhcpReplies, dhcpDropped, dhcpRefused,
		dhcpPersistErrs, raSent, raSendErr, raRS, raNS, raDropped, slaacMappings, slaacPool, slaacTranslated, slaacDropped,
		slaacCreated, slaacExpired, slaacRefused, slaacPersistErrs}
)

// Collector exports the LAN services' counters at scrape time (register
// it on the admin registry); services that are off export nothing.
func (s *LANServices) Collector() prometheus.Collector { return lanCollector{s} }

type lanCollector struct{ s *LANServices }

func (c lanCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range lanCollectorDescs {
		ch <- d
	}
}

func (c lanCollector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, l...)
	}
	counter := func(d *prometheus.Desc, v uint64, l ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), l...)
	}
	if d := c.s.DHCPv6; d != nil {
		st := d.Stats()
		gauge(dhcpLeases, float64(st.Leases))
		gauge(dhcpOffers, float64(st.Offered))
		gauge(dhcpDeclined, float64(st.Declined))
		gauge(dhcpPool, float64(st.PoolSize))
		counter(dhcpReplies, st.Replies)
		for r := range dhcp6.NumDropReasons {
			counter(dhcpDropped, st.Dropped[r], r.String())
		}
		for r := range dhcp6.NumRefusals {
			counter(dhcpRefused, st.Refused[r], r.String())
		}
		counter(dhcpPersistErrs, st.PersistErrors)
	}
	if a := c.s.RA; a != nil {
		st := a.Stats()
		counter(raSent, st.Sent.Load())
		counter(raSendErr, st.SendErrors.Load())
		counter(raRS, st.Solicitations.Load())
		counter(raNS, st.Neighbor.Load())
		for r := range ra.NumDropReasons {
			counter(raDropped, st.Dropped[r].Load(), r.String())
		}
	}
	if t := c.s.SLAAC; t != nil {
		st := t.Stats()
		gauge(slaacMappings, float64(st.Mappings))
		gauge(slaacPool, float64(st.PoolSize))
		counter(slaacTranslated, st.TranslatedOut, "outbound")
		counter(slaacTranslated, st.TranslatedIn, "inbound")
		counter(slaacDropped, st.DroppedOut, "outbound")
		counter(slaacDropped, st.DroppedIn, "inbound")
		counter(slaacCreated, st.Created)
		counter(slaacExpired, st.Expired)
		for r := range slaac.NumRefusals {
			counter(slaacRefused, st.Refused[r], r.String())
		}
		counter(slaacPersistErrs, st.PersistErrors)
	}
}

// LANDebug is the document /debug/leases serves.
type LANDebug struct {
	DHCPv6 []dhcp6.Lease   `json:"dhcpv6"`
	SLAAC  []slaac.Mapping `json:"slaac"`
}

// Debug returns the DHCPv6 leases and the SLAAC mappings.
func (s *LANServices) Debug() LANDebug {
	d := LANDebug{DHCPv6: []dhcp6.Lease{}, SLAAC: []slaac.Mapping{}}
	if s.DHCPv6 != nil {
		d.DHCPv6 = s.DHCPv6.Leases()
	}
	if s.SLAAC != nil {
		if m := s.SLAAC.Mappings(); m != nil {
			d.SLAAC = m
		}
	}
	return d
}

// DebugHandler serves Debug as JSON (mount it at /debug/leases).
func (s *LANServices) DebugHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(s.Debug())
	})
}
