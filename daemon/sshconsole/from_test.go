package sshconsole

import (
	"errors"
	"net/netip"
	"testing"
)

func TestMatchFrom(t *testing.T) {
	for _, tc := range []struct {
		addr, list string
		want       bool
		bad        bool // the list does not parse
	}{
		// Addresses and networks.
		{"127.0.0.1", "127.0.0.1", true, false},
		{"127.0.0.2", "127.0.0.1", false, false},
		{"10.1.2.3", "10.0.0.0/8", true, false},
		{"11.1.2.3", "10.0.0.0/8", false, false},
		{"192.0.2.77", "198.51.100.0/24,192.0.2.64/26", true, false},
		{"192.0.2.7", "192.0.2.64/26", false, false},
		{"2001:db8::1", "2001:db8::/32", true, false},
		{"2001:db9::1", "2001:db8::/32", false, false},
		{"::1", "::1", true, false},
		{"127.0.0.1", "::1", false, false},
		{"127.0.0.1", "0.0.0.0/0", true, false},
		{"::1", "0.0.0.0/0", false, false}, // another family
		{"::ffff:127.0.0.1", "127.0.0.1", true, false},
		// Wildcards on the address's text.
		{"192.168.1.20", "192.168.1.*", true, false},
		{"192.168.10.20", "192.168.1.?0", false, false},
		{"192.168.1.20", "192.168.1.?0", true, false},
		{"10.0.0.1", "*", true, false},
		{"2001:db8::1", "2001:db8:*", true, false},
		{"10.0.0.1", "*.example.com", false, false}, // names match the address only
		// Negation: a negated match refuses whatever else matches.
		{"127.0.0.1", "!127.0.0.1,*", false, false},
		{"10.0.0.1", "!127.0.0.1,*", true, false},
		{"127.0.0.1", "*,!127.0.0.1", false, false},
		{"10.9.9.9", "10.0.0.0/8,!10.9.0.0/16", false, false},
		{"10.8.9.9", "10.0.0.0/8,!10.9.0.0/16", true, false},
		{"127.0.0.1", "!10.0.0.0/8", false, false}, // only negations: nothing matched
		{"127.0.0.1", "!127.0.0.*", false, false},
		// Lists that do not parse let nobody in.
		{"10.0.0.1", "10.0.0.1/8", false, true}, // bits set past the prefix
		{"10.0.0.1", "10.0.0.0/33", false, true},
		{"10.0.0.1", "10.0.0.0/8,", false, true}, // an empty entry
		{"10.0.0.1", "!", false, true},
		{"10.0.0.1", "", false, true},
		// A prefix length that is no number makes a wildcard, as in
		// OpenSSH.
		{"10.0.0.1", "10.0.0.0/x", false, false},
	} {
		got, err := matchFrom(netip.MustParseAddr(tc.addr), tc.list)
		if bad := err != nil; got != tc.want || bad != tc.bad {
			t.Errorf("matchFrom(%s, %q) = %v, %v; want %v (invalid %v)", tc.addr, tc.list, got, err, tc.want, tc.bad)
		}
		if err != nil && !errors.Is(err, errFromList) {
			t.Errorf("matchFrom(%s, %q) error %v is not errFromList", tc.addr, tc.list, err)
		}
		if cerr := checkFrom(tc.list); (cerr != nil) != tc.bad {
			t.Errorf("checkFrom(%q) = %v, want invalid %v", tc.list, cerr, tc.bad)
		}
	}
	if ok, _ := matchFrom(netip.Addr{}, "*"); ok {
		t.Error("a client without an address matched *")
	}
}

func TestMatchPattern(t *testing.T) {
	for _, tc := range []struct {
		s, pattern string
		want       bool
	}{
		{"", "", true},
		{"", "*", true},
		{"a", "", false},
		{"abc", "a*c", true},
		{"abc", "a*b", false},
		{"abcbc", "*bc", true},
		{"abc", "a?c", true},
		{"ac", "a?c", false},
		{"aXbXc", "a*b*c", true},
		{"a.b", "a?b", true},
		{"ab", "ab*", true},
		{"ab", "ab**", true},
		{"ab", "*?*?*", true},
		{"a", "*?*?*", false},
	} {
		if got := matchPattern(tc.s, tc.pattern); got != tc.want {
			t.Errorf("matchPattern(%q, %q) = %v, want %v", tc.s, tc.pattern, got, tc.want)
		}
	}
}

// FuzzMatchFrom feeds from= lists from outside: no panic, and a list
// checkFrom accepts never fails to match.
func FuzzMatchFrom(f *testing.F) {
	for _, s := range []string{"127.0.0.1", "!10.0.0.0/8,*", "2001:db8::/32", "a*b?c", "10.0.0.1/8", ",", "!"} {
		f.Add(s, "10.1.2.3")
	}
	f.Fuzz(func(t *testing.T, list, addr string) {
		a, err := netip.ParseAddr(addr)
		if err != nil {
			a = netip.MustParseAddr("192.0.2.1")
		}
		_, merr := matchFrom(a, list)
		if cerr := checkFrom(list); cerr == nil && merr != nil {
			t.Errorf("checkFrom(%q) accepts it but matchFrom(%s) = %v", list, a, merr)
		}
	})
}
