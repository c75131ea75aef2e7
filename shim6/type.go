package shim6

//go:generate go run golang.org/x/tools/cmd/stringer@v0.52.0 -type=Type -trimprefix=Type
//go:generate go run golang.org/x/tools/cmd/stringer@v0.52.0 -type=OptionType -trimprefix=Opt
//go:generate go run golang.org/x/tools/cmd/stringer@v0.52.0 -type=Sta -trimprefix=Sta
//go:generate go run golang.org/x/tools/cmd/stringer@v0.52.0 -type=ErrorCode -trimprefix=Code

// Type is the 7-bit control message type (RFC 5533 §5.3 Table 1, RFC 5534
// §5.1, §5.2).
type Type uint8

// Control message types.
const (
	TypeI1            Type = 1  // RFC 5533 §5.4
	TypeR1            Type = 2  // RFC 5533 §5.5
	TypeI2            Type = 3  // RFC 5533 §5.6
	TypeR2            Type = 4  // RFC 5533 §5.7
	TypeR1bis         Type = 5  // RFC 5533 §5.8
	TypeI2bis         Type = 6  // RFC 5533 §5.9
	TypeUpdateRequest Type = 64 // RFC 5533 §5.10
	TypeUpdateAck     Type = 65 // RFC 5533 §5.11
	TypeKeepalive     Type = 66 // RFC 5534 §5.1
	TypeProbe         Type = 67 // RFC 5534 §5.2
	TypeError         Type = 68 // RFC 5533 §5.14
)

// Known reports whether t is one of the message types above.
func (t Type) Known() bool { return t < 128 && minLen[t] != 0 }

// TriggersR1bis reports whether a message of this type that arrives for an
// unknown context tag is answered with R1bis: types 64–127 do, 0–63 never
// (RFC 5533 §5.3, §7.17).
func (t Type) TriggersR1bis() bool { return t >= 64 && t < 128 }

// MinLen is the smallest total length in octets of a message of type t
// (RFC 5533 §5.3 ff., RFC 5534 §5), or 0 for unknown types.
func (t Type) MinLen() int {
	if t >= 128 {
		return 0
	}
	return int(minLen[t])
}

// minLen is indexed by Type; zero marks unknown types.
var minLen = [128]uint8{
	TypeI1:            16,
	TypeR1:            16,
	TypeI2:            24,
	TypeR2:            16,
	TypeR1bis:         16,
	TypeI2bis:         32,
	TypeUpdateRequest: 16,
	TypeUpdateAck:     16,
	TypeKeepalive:     16,
	TypeProbe:         56,
	TypeError:         16,
}

// fixedLen is the offset at which options start, for every type except
// Probe (variable) and Error (no options: the quoted packet runs to the end).
var fixedLen = [128]uint8{
	TypeI1:            16,
	TypeR1:            16,
	TypeI2:            24,
	TypeR2:            16,
	TypeR1bis:         16,
	TypeI2bis:         32,
	TypeUpdateRequest: 16,
	TypeUpdateAck:     16,
	TypeKeepalive:     16,
	TypeProbe:         16,
	TypeError:         8,
}

// ErrorCode is the 7-bit Error Code of an Error message (RFC 5533 §5.14
// Table 2).
type ErrorCode uint8

// Error codes.
const (
	CodeUnknownType         ErrorCode = 0 // Pointer → the Type octet
	CodeCriticalOption      ErrorCode = 1 // Pointer → the option's Type field
	CodeVerificationFailed  ErrorCode = 2 // Pointer → the verification method octet
	CodeGenerationMismatch  ErrorCode = 3 // Pointer → Locator Preferences generation
	CodeElementCountInvalid ErrorCode = 4 // Pointer → Locator Preferences Length
)

// Sta is the REAP state a Probe reports (RFC 5534 §5.2).
type Sta uint8

// REAP states carried in Probe messages; 3 is illegal.
const (
	StaOperational Sta = 0
	StaExploring   Sta = 1
	StaInboundOk   Sta = 2
)

// OptionType is the 15-bit option type (RFC 5533 §5.15 Table 3, RFC 5534
// §5.3).
type OptionType uint16

// Option types.
const (
	OptResponderValidator        OptionType = 1  // RFC 5533 §5.15.1
	OptLocatorList               OptionType = 2  // RFC 5533 §5.15.2
	OptLocatorPreferences        OptionType = 3  // RFC 5533 §5.15.3
	OptCGAParameterDataStructure OptionType = 4  // RFC 5533 §5.15.4
	OptCGASignature              OptionType = 5  // RFC 5533 §5.15.5
	OptULIDPair                  OptionType = 6  // RFC 5533 §5.15.6
	OptForkedInstanceID          OptionType = 7  // RFC 5533 §5.15.7
	OptKeepaliveTimeout          OptionType = 10 // RFC 5534 §5.3
)

// Known reports whether t is one of the option types above.
func (t OptionType) Known() bool {
	switch t {
	case OptResponderValidator, OptLocatorList, OptLocatorPreferences,
		OptCGAParameterDataStructure, OptCGASignature, OptULIDPair,
		OptForkedInstanceID, OptKeepaliveTimeout:
		return true
	}
	return false
}

// Locator verification methods (RFC 5533 §5.15.2 Table 4).
//
// DISCREPANCY (inside RFC 5533): §17 (IANA
// considerations) lists 1 = CGA, 2 = HBA, the reverse of §5.15.2. We follow
// §5.15.2, as Wireshark and LinShim6 do.
const (
	VerifyHBA uint8 = 1
	VerifyCGA uint8 = 2
)

// Locator Preferences flags (RFC 5533 §5.15.3).
const (
	FlagBroken    uint8 = 0x01
	FlagTransient uint8 = 0x02
)
