package sshconsole

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// The from="pattern-list" option of authorized_keys, with the semantics
// of OpenSSH's sshd (sshd(8), AUTHORIZED_KEYS FILE FORMAT; match.c
// match_host_and_ip, addrmatch.c addr_match_list): the list is
// comma-separated; an entry is an address in CIDR notation (192.0.2.0/24,
// 2001:db8::/32, or a bare address), else a pattern where * matches any
// run of characters and ? any one; an entry starting with ! is negated.
// The client is let in when an entry matches its address and no negated
// entry does. A CIDR entry with a prefix length the family does not have,
// or with bits set past it (10.0.0.1/8), makes the whole list invalid, as
// an empty entry does; an invalid list lets nobody in.
//
// Host names are matched against the client's address only: the console
// does no reverse DNS lookup, as sshd does not with its default UseDNS
// no.

// errFromList says a from= list does not parse.
var errFromList = errors.New("invalid from= list")

// checkFrom reports whether a from= pattern list is well formed.
func checkFrom(list string) error {
	_, err := addrMatchList(netip.Addr{}, list)
	return err
}

// matchFrom reports whether a client at addr may use a key whose from=
// option is list.
func matchFrom(addr netip.Addr, list string) (bool, error) {
	if !addr.IsValid() {
		return false, nil
	}
	addr = addr.Unmap()
	mip, err := addrMatchList(addr, list)
	if err != nil {
		return false, err
	}
	if mip < 0 {
		return false, nil
	}
	// The host name is the address's text, lower-cased like the
	// patterns.
	mhost := matchPatternList(strings.ToLower(addr.String()), list)
	if mhost < 0 {
		return false, nil
	}
	return mhost > 0 || mip > 0, nil
}

// addrMatchList matches addr against the CIDR and wildcard entries of
// list as OpenSSH's addr_match_list does: 1 for a match, 0 for none, -1
// for a negated match. An invalid address (the zero Addr) only checks the
// list.
func addrMatchList(addr netip.Addr, list string) (int, error) {
	ret := 0
	for _, entry := range strings.Split(list, ",") {
		neg := strings.HasPrefix(entry, "!")
		if neg {
			entry = entry[1:]
		}
		if entry == "" {
			return 0, fmt.Errorf("%w: an empty entry in %q", errFromList, list)
		}
		prefix, isCIDR, err := parseCIDR(entry)
		if err != nil {
			return 0, fmt.Errorf("%w: %q: %v", errFromList, entry, err)
		}
		if !addr.IsValid() {
			continue
		}
		var found bool
		if isCIDR {
			found = prefix.Addr().Is4() == addr.Is4() && prefix.Contains(addr)
		} else {
			found = matchPattern(addr.String(), entry)
		}
		if found {
			if neg {
				return -1, nil
			}
			ret = 1
		}
	}
	return ret, nil
}

// parseCIDR reads an entry as an address or a network, as OpenSSH's
// addr_pton_cidr does. isCIDR is false for an entry that is no address
// (a wildcard pattern); err is set for an address whose prefix length is
// out of range or that has bits set past it.
func parseCIDR(entry string) (p netip.Prefix, isCIDR bool, err error) {
	host, bits, hasBits := strings.Cut(entry, "/")
	n := -1
	if hasBits {
		v, err := strconv.ParseUint(bits, 10, 8)
		if err != nil || bits[0] < '0' || bits[0] > '9' || v > 128 {
			return p, false, nil
		}
		n = int(v)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return p, false, nil
	}
	if n < 0 {
		n = a.BitLen()
	}
	if n > a.BitLen() {
		return p, true, fmt.Errorf("prefix length %d is more than %d", n, a.BitLen())
	}
	p = netip.PrefixFrom(a, n)
	if p.Masked().Addr() != a {
		return p, true, fmt.Errorf("bits are set past the prefix length %d", n)
	}
	return p, true, nil
}

// matchPatternList matches s against the comma-separated patterns of
// list as OpenSSH's match_pattern_list does (patterns lower-cased): 1 for
// a match, 0 for none, -1 for a negated match.
func matchPatternList(s, list string) int {
	got := 0
	for _, entry := range strings.Split(list, ",") {
		neg := strings.HasPrefix(entry, "!")
		if neg {
			entry = entry[1:]
		}
		if matchPattern(s, strings.ToLower(entry)) {
			if neg {
				return -1
			}
			got = 1
		}
	}
	return got
}

// matchPattern matches s against a pattern where * is any run of
// characters and ? any one character; everything else is itself.
func matchPattern(s, pattern string) bool {
	// Iterative matching with backtracking to the last *.
	si, pi := 0, 0
	star, mark := -1, 0
	for si < len(s) {
		switch {
		case pi < len(pattern) && (pattern[pi] == '?' || pattern[pi] == s[si]):
			si++
			pi++
		case pi < len(pattern) && pattern[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(pattern) && pattern[pi] == '*' {
		pi++
	}
	return pi == len(pattern)
}
