package sshconsole

import (
	"crypto/ed25519"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// testKey is an authorized_keys line's key part for a fresh ed25519 key.
func testKey(t *testing.T) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := gossh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(k))) + " someone@host"
}

func TestAuthorizedKeyOptions(t *testing.T) {
	key := testKey(t)
	local := netip.MustParseAddr("127.0.0.1")
	now := time.Date(2030, 6, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		options string
		refused string // part of why the key is refused; "" when it is not
		noPTY   bool
		allowed bool // for 127.0.0.1 at now
	}{
		{"", "", false, true},
		{`from="127.0.0.0/8,::1"`, "", false, true},
		{`from="!127.0.0.1,*"`, "", false, false},
		{`FROM="10.0.0.0/8"`, "", false, false},
		{"restrict", "", true, true},
		{"restrict,pty", "", false, true},
		{"pty,restrict", "", true, true},
		{"no-pty", "", true, true},
		{`restrict,pty,from="127.0.0.1",no-port-forwarding,no-agent-forwarding,no-X11-forwarding,no-user-rc`, "", false, true},
		{`permitopen="localhost:80",permitlisten="8080",tunnel="1",environment="A=b",no-touch-required`, "", false, true},
		{`expiry-time="20300601"`, "", false, false},
		{`expiry-time="203006011300Z"`, "", false, true},
		{`expiry-time="20300601115959Z"`, "", false, false},
		{`command="/bin/true"`, "command= runs a command", false, false},
		{"cert-authority", "certificates", false, false},
		{`principals="ops"`, "certificates", false, false},
		{"verify-required", "user verification", false, false},
		{"no-such-option", `unknown option "no-such-option"`, false, false},
		{`from="10.0.0.1/8"`, "invalid from= list", false, false},
		{`from=10.0.0.1`, "double quotes", false, false},
		{`expiry-time="2030"`, "YYYYMMDD", false, false},
		{"permitopen", "needs a value", false, false},
	} {
		line := key
		if tc.options != "" {
			line = tc.options + " " + key
		}
		path := filepath.Join(t.TempDir(), "authorized_keys")
		if err := os.WriteFile(path, []byte("# test\n"+line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		keys, err := ParseAuthorizedKeys(path)
		if len(keys) != 1 {
			t.Fatalf("%s: ParseAuthorizedKeys = %d keys, %v", tc.options, len(keys), err)
		}
		k := keys[0]
		if k.Line != 2 {
			t.Errorf("%s: line %d, want 2", tc.options, k.Line)
		}
		if tc.refused != "" {
			if k.Refused == nil || !strings.Contains(k.Refused.Error(), tc.refused) {
				t.Errorf("%s: refused = %v, want %q", tc.options, k.Refused, tc.refused)
			}
			if err == nil || !strings.Contains(err.Error(), "no key the console can honour") {
				t.Errorf("%s: a file of refused keys parses: %v", tc.options, err)
			}
		} else if k.Refused != nil || err != nil {
			t.Errorf("%s: refused = %v, %v; want the key", tc.options, k.Refused, err)
		}
		if k.NoPTY != tc.noPTY {
			t.Errorf("%s: noPTY = %v, want %v", tc.options, k.NoPTY, tc.noPTY)
		}
		if ok, why := k.allows(local, now); ok != tc.allowed {
			t.Errorf("%s: allows(127.0.0.1) = %v (%s), want %v", tc.options, ok, why, tc.allowed)
		}
	}
}

func TestAuthorizedKeysRefusedNamed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "authorized_keys")
	content := testKey(t) + "\n" + `command="uptime" ` + testKey(t) + "\n"
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	keys, err := ParseAuthorizedKeys(path)
	if err != nil || len(keys) != 2 {
		t.Fatalf("ParseAuthorizedKeys = %d keys, %v", len(keys), err)
	}
	if keys[0].Refused != nil || !errors.Is(keys[1].Refused, errOption) || keys[1].Line != 2 {
		t.Errorf("refused: %v, %v (line %d)", keys[0].Refused, keys[1].Refused, keys[1].Line)
	}
}
