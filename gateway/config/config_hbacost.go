package config

import (
	"fmt"
	"time"
)

// CGA generation (RFC 3972 §4 step 2) tries modifiers until Hash2 has
// 16·Sec leading zero bits: 2^(16·Sec) SHA-1 trials per host on average,
// at every start and at every reload that changes the HBA keys. Measured
// here (`shim6gw hba --sec 1 --count 1024`, two loaded cores): 27.8 s, so
// 0.41 µs per trial; Sec 0 builds 1024 hosts in 0.1 s, Sec 1 needs 27 ms
// per host and Sec 2 about 30 minutes per host.
const cgaTrialCost = 410 * time.Nanosecond

// Limits on the expected HBA generation time: above the first the daemon
// warns at start, above the second the configuration is refused (a
// gateway that needs longer to start is down for that long after every
// crash or reboot).
const (
	HBAGenerationWarn = 10 * time.Second
	HBAGenerationMax  = 2 * time.Minute
)

// HBAGenerationEstimate is the expected time to derive hosts HBA sets at
// Sec sec on the reference machine (slower CPUs take proportionally longer).
func HBAGenerationEstimate(hosts, sec int) time.Duration {
	if hosts < 1 || sec < 0 || sec > 2 {
		return 0
	}
	return time.Duration(hosts) * time.Duration(uint64(1)<<(16*sec)) * cgaTrialCost
}

// checkHBACost refuses an hba.sec and hba.hosts whose generation would
// take longer than HBAGenerationMax.
func (d *decoder) checkHBACost() {
	c := d.cfg
	if est := HBAGenerationEstimate(c.HBA.Hosts, c.HBA.Sec); est > HBAGenerationMax {
		d.bad("hba.sec", "%d with %d hosts needs about %v of CGA generation at every start (2^%d hash trials per host, RFC 3972 §4); "+
			"at most %v is accepted: lower hba.sec or hba.hosts", c.HBA.Sec, c.HBA.Hosts, est.Round(time.Second), 16*c.HBA.Sec, HBAGenerationMax)
	}
}

// HBACostNote is the start-up warning for a slow but accepted plan ("" if
// it is fast).
func HBACostNote(c *Config) string {
	est := HBAGenerationEstimate(c.HBA.Hosts, c.HBA.Sec)
	if est <= HBAGenerationWarn {
		return ""
	}
	return fmt.Sprintf("hba.sec %d with %d hosts: about %v of CGA generation at every start", c.HBA.Sec, c.HBA.Hosts, est.Round(time.Second))
}
