package sshconsole

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// AuthorizedKey is one key of an authorized_keys file and what its
// options (sshd(8), AUTHORIZED_KEYS FILE FORMAT) allow. The console
// honours these options:
//
//   - from="pattern-list": only clients whose address matches log in with
//     the key (see matchFrom).
//   - expiry-time="YYYYMMDD[HHMM[SS]][Z]": the key is refused from then on
//     (local time, or UTC with Z).
//   - no-pty, and restrict unless a later pty allows one: the key may not
//     open a terminal, so its sessions are refused with a message (the
//     console needs one); pty undoes them.
//   - restrict, no-agent-forwarding, no-port-forwarding, no-X11-forwarding,
//     no-user-rc, permitopen=, permitlisten=, tunnel= and their positive
//     forms: the console offers no forwarding, agent, X11, tunnel or rc
//     file to any key, so they hold as they are.
//   - environment=: ignored, as sshd ignores it with its default
//     PermitUserEnvironment no; the console runs no program to give it
//     to.
//   - no-touch-required: accepted; a FIDO key must still be touched (the
//     SSH library checks it), which is stricter.
//
// A key with any other option (command=, which would run one command and
// not the console; cert-authority= and principals=, as the console takes
// no certificates; verify-required, which the console cannot check; or
// an option sshd does not know) is refused: it is logged when the daemon
// starts, and at every login with it.
type AuthorizedKey struct {
	Key  gossh.PublicKey
	Line int // in the file, from 1
	// From is the from= pattern list; "" lets any address in.
	From string
	// Expiry is when expiry-time= ends the key; zero for never.
	Expiry time.Time
	// NoPTY says the key may not open a terminal: no-pty, or restrict
	// without a pty after it.
	NoPTY bool
	// Refused says why the console refuses the key whatever the client;
	// nil when it may log in.
	Refused error
}

// ParseAuthorizedKeys reads an OpenSSH authorized_keys file (blank lines
// and # comments allowed) and returns its keys with their options. A
// line that does not parse is an error; so is a file without a key the
// console may let in. Keys the console refuses are returned with Refused
// set, so that a login with one says why.
func ParseAuthorizedKeys(path string) ([]AuthorizedKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("ssh console: authorized keys: %w", err)
	}
	var keys []AuthorizedKey
	usable := 0
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, _, opts, _, err := gossh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("ssh console: authorized keys %s line %d: %w", path, i+1, err)
		}
		ak := AuthorizedKey{Key: k, Line: i + 1}
		ak.Refused = ak.applyOptions(opts)
		if ak.Refused == nil {
			usable++
		}
		keys = append(keys, ak)
	}
	switch {
	case len(keys) == 0:
		return nil, fmt.Errorf("ssh console: authorized keys %s: no key in it", path)
	case usable == 0:
		return keys, fmt.Errorf("ssh console: authorized keys %s: no key the console can honour (line %d: %v)", path, keys[0].Line, keys[0].Refused)
	}
	return keys, nil
}

// errOption says a key has an option the console cannot honour.
var errOption = errors.New("option not honoured")

// applyOptions takes a key's options in order, as sshd does (restrict
// then pty allows a terminal; pty then restrict does not), and returns
// why the key is refused, or nil.
func (k *AuthorizedKey) applyOptions(opts []string) error {
	for _, opt := range opts {
		name, value, hasValue := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		if hasValue {
			v, err := dequote(value)
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			value = v
		}
		switch name {
		case "restrict", "no-pty":
			k.NoPTY = true
		case "pty":
			k.NoPTY = false
		case "agent-forwarding", "no-agent-forwarding", "port-forwarding", "no-port-forwarding",
			"x11-forwarding", "no-x11-forwarding", "user-rc", "no-user-rc", "no-touch-required":
			// Nothing the console offers; see AuthorizedKey.
		case "permitopen", "permitlisten", "tunnel", "environment":
			if !hasValue {
				return fmt.Errorf("%s needs a value", name)
			}
		case "from":
			if !hasValue {
				return errors.New("from needs a value")
			}
			if err := checkFrom(value); err != nil {
				return err
			}
			k.From = value
		case "expiry-time":
			t, err := parseExpiry(value)
			if err != nil {
				return err
			}
			k.Expiry = t
		case "command":
			return fmt.Errorf("%w: command= runs a command, and the console runs none", errOption)
		case "cert-authority", "principals":
			return fmt.Errorf("%w: %s is for certificates, which the console does not take", errOption, name)
		case "verify-required":
			return fmt.Errorf("%w: verify-required asks for user verification, which the console cannot check", errOption)
		default:
			return fmt.Errorf("%w: unknown option %q", errOption, name)
		}
	}
	return nil
}

// dequote reads an option's value: a double-quoted string where \" is a
// quote.
func dequote(v string) (string, error) {
	if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' {
		return "", errors.New("the value must be in double quotes")
	}
	return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`), nil
}

// parseExpiry reads expiry-time's YYYYMMDD[HHMM[SS]], in local time, or
// in UTC with a trailing Z.
func parseExpiry(v string) (time.Time, error) {
	loc := time.Local
	if s, ok := strings.CutSuffix(v, "Z"); ok {
		v, loc = s, time.UTC
	}
	layout := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}[len(v)]
	if layout == "" {
		return time.Time{}, fmt.Errorf("expiry-time %q: want YYYYMMDD[HHMM[SS]]", v)
	}
	t, err := time.ParseInLocation(layout, v, loc)
	if err != nil {
		return time.Time{}, fmt.Errorf("expiry-time %q: %w", v, err)
	}
	return t, nil
}

// allows reports whether a client at addr may log in with the key at
// now, and why not.
func (k *AuthorizedKey) allows(addr netip.Addr, now time.Time) (bool, string) {
	if k.Refused != nil {
		return false, k.Refused.Error()
	}
	if !k.Expiry.IsZero() && !now.Before(k.Expiry) {
		return false, "the key expired (expiry-time)"
	}
	if k.From != "" {
		ok, err := matchFrom(addr, k.From)
		if err != nil {
			return false, err.Error()
		}
		if !ok {
			return false, "the client's address is not in from=\"" + k.From + "\""
		}
	}
	return true, ""
}

// remoteAddr is the IP address of a connection's remote end; the zero
// Addr when it has none.
func remoteAddr(a net.Addr) netip.Addr {
	if tcp, ok := a.(*net.TCPAddr); ok {
		return tcp.AddrPort().Addr().Unmap()
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}
