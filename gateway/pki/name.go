package pki

import (
	"fmt"
)

// maxDeviceNameLen is the longest device name, as for a DNS label
// (RFC 1123) and a Kubernetes object name of that style.
const maxDeviceNameLen = 63

// ValidDeviceName returns nil if name can name a device: 1 to 63
// characters, each a lowercase ASCII letter, a digit or '-', starting and
// ending with a letter or digit (a DNS-1123 label). Otherwise the error says
// what is wrong.
func ValidDeviceName(name string) error { return ValidName("device", name) }

// ValidName is ValidDeviceName for the name of an object of another kind
// (application, gateway), which follows the same rule; errors name kind.
func ValidName(kind, name string) error {
	if name == "" {
		return fmt.Errorf("%s name is empty", kind)
	}
	if len(name) > maxDeviceNameLen {
		return fmt.Errorf("%s name is %d bytes long, more than %d", kind, len(name), maxDeviceNameLen)
	}
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-') {
			return fmt.Errorf("%s name %q: character %q at offset %d is not a lowercase letter, digit or '-'", kind, name, r, i)
		}
	}
	if name[0] == '-' {
		return fmt.Errorf("%s name %q must start with a lowercase letter or digit", kind, name)
	}
	if name[len(name)-1] == '-' {
		return fmt.Errorf("%s name %q must end with a lowercase letter or digit", kind, name)
	}
	return nil
}

// quoteShort quotes untrusted text for an error message, cut to a length
// that keeps the message readable.
func quoteShort(s string) string {
	const max = 64
	if len(s) > max {
		return fmt.Sprintf("%q...", s[:max])
	}
	return fmt.Sprintf("%q", s)
}
