package pki_test

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway/pki"
)

// clock is a settable clock for Options.Now, safe for concurrent use.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(tb testing.TB, dir string, opt pki.Options) *pki.Authority {
	tb.Helper()
	a, err := pki.Open(dir, opt)
	if err != nil {
		tb.Fatalf("Open(%q) error: %v", dir, err)
	}
	return a
}

func newCSR(tb testing.TB, name string) []byte {
	tb.Helper()
	csr, _, err := pki.NewCSR(name)
	if err != nil {
		tb.Fatalf("NewCSR(%q) error: %v", name, err)
	}
	return csr
}

// csrWithKey makes a CSR with common name cn signed by key.
func csrWithKey(tb testing.TB, cn string, key crypto.Signer) []byte {
	tb.Helper()
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: cn},
	}, key)
	if err != nil {
		tb.Fatalf("CreateCertificateRequest: %v", err)
	}
	return der
}

func parseCert(tb testing.TB, der []byte) *x509.Certificate {
	tb.Helper()
	c, err := x509.ParseCertificate(der)
	if err != nil {
		tb.Fatalf("ParseCertificate: %v", err)
	}
	return c
}

func parseCertPEM(tb testing.TB, p []byte) *x509.Certificate {
	tb.Helper()
	b, _ := pem.Decode(p)
	if b == nil || b.Type != "CERTIFICATE" {
		tb.Fatalf("no CERTIFICATE PEM block in %q", p)
	}
	return parseCert(tb, b.Bytes)
}

// caSigner reads the CA key from the authority directory, to make
// certificates the authority would never issue.
func caSigner(t *testing.T, dir string) crypto.Signer {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatal("ca.key: no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k.(crypto.Signer)
}

func verifyClient(a *pki.Authority, c *x509.Certificate, now time.Time) error {
	_, err := c.Verify(x509.VerifyOptions{
		Roots:       a.Pool(),
		CurrentTime: now,
		KeyUsages:   []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	return err
}

func TestOpenCreatesAndReloads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "pki")
	a := open(t, dir, pki.Options{})

	ca := a.CACert()
	if ca.Subject.CommonName != "Wasmbed CA" || !ca.IsCA || !ca.BasicConstraintsValid {
		t.Errorf("CA subject %q IsCA %v, want Wasmbed CA and a CA", ca.Subject.CommonName, ca.IsCA)
	}
	pub, ok := ca.PublicKey.(*ecdsa.PublicKey)
	if !ok || pub.Curve != elliptic.P256() {
		t.Errorf("CA key %T, want ECDSA P-256", ca.PublicKey)
	}
	if err := ca.CheckSignatureFrom(ca); err != nil {
		t.Errorf("CA is not self-signed: %v", err)
	}
	if life := ca.NotAfter.Sub(ca.NotBefore); life < 3650*24*time.Hour || life > 3652*24*time.Hour {
		t.Errorf("CA lifetime %v, want about 10 years", life)
	}
	if ca.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Errorf("CA key usage %v lacks CertSign", ca.KeyUsage)
	}
	for name, want := range map[string]os.FileMode{"ca.key": 0o600, "state.json": 0o600, "ca.crt": 0o644} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("stat %s: %v", name, err)
		}
		if got := fi.Mode().Perm(); got != want {
			t.Errorf("%s mode %v, want %v", name, got, want)
		}
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(onDisk, a.CACertPEM()) {
		t.Error("ca.crt differs from CACertPEM")
	}

	b := open(t, dir, pki.Options{})
	if !bytes.Equal(a.CACertPEM(), b.CACertPEM()) || !a.CACert().Equal(b.CACert()) {
		t.Error("reopened authority has a different CA")
	}
	// A certificate issued after reopening verifies against the first pool.
	certPEM, _, err := b.ProvisionDevice("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyClient(a, parseCertPEM(t, certPEM), time.Now()); err != nil {
		t.Errorf("certificate from reopened authority: %v", err)
	}

	// The returned PEM is a copy.
	p := a.CACertPEM()
	p[0] = 'X'
	if a.CACertPEM()[0] == 'X' {
		t.Error("CACertPEM returned the authority's own buffer")
	}
}

func TestOpenRejectsBadDirectories(t *testing.T) {
	other := t.TempDir()
	open(t, other, pki.Options{})
	otherKey, err := os.ReadFile(filepath.Join(other, "ca.key"))
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		opt     pki.Options
		mangle  func(t *testing.T, dir string)
		wantSub string
	}{
		{
			name:    "corrupt state",
			mangle:  writeFile("state.json", "{not json"),
			wantSub: "state.json",
		},
		{
			name:    "state of an unknown version",
			mangle:  writeFile("state.json", `{"version": 99}`),
			wantSub: "version 99",
		},
		{
			name:    "state with a bad token record",
			mangle:  writeFile("state.json", `{"version":1,"tokens":{"abc":{"device":"x"}}}`),
			wantSub: "token key",
		},
		{
			name:    "state with a bad serial",
			mangle:  writeFile("state.json", `{"version":1,"revoked":{"-1":{}}}`),
			wantSub: "serial",
		},
		{
			name:    "state with a null record",
			mangle:  writeFile("state.json", `{"version":1,"issued":{"ab":null}}`),
			wantSub: "null record",
		},
		{
			name:    "corrupt ca.key",
			mangle:  writeFile("ca.key", "garbage"),
			wantSub: "ca.key",
		},
		{
			name:    "ca.key in a PEM block of garbage",
			mangle:  writeFile("ca.key", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"),
			wantSub: "ca.key",
		},
		{
			name:    "ca.key of another CA",
			mangle:  writeFile("ca.key", string(otherKey)),
			wantSub: "does not match",
		},
		{
			name:    "corrupt ca.crt",
			mangle:  writeFile("ca.crt", "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"),
			wantSub: "ca.crt",
		},
		{
			name:    "ca.key missing",
			mangle:  remove("ca.key"),
			wantSub: "ca.key is missing",
		},
		{
			name:    "ca.crt missing",
			mangle:  remove("ca.crt"),
			wantSub: "ca.crt is missing",
		},
		{
			name:    "state missing",
			mangle:  remove("state.json"),
			wantSub: "state.json is missing",
		},
		{
			name:    "negative certificate lifetime",
			opt:     pki.Options{DeviceCertTTL: -time.Hour},
			mangle:  func(*testing.T, string) {},
			wantSub: "negative",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			a := open(t, dir, pki.Options{})
			if _, err := a.CreateToken("dev", time.Hour); err != nil {
				t.Fatal(err)
			}
			tt.mangle(t, dir)
			_, err := pki.Open(dir, tt.opt)
			if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
				t.Fatalf("Open = %v, want error containing %q", err, tt.wantSub)
			}
		})
	}
}

func writeFile(name, content string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func remove(name string) func(*testing.T, string) {
	return func(t *testing.T, dir string) {
		if err := os.Remove(filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenFinishesInterruptedCreation(t *testing.T) {
	dir := t.TempDir()
	// A crash after the empty state was written and before the CA was.
	if err := os.WriteFile(filepath.Join(dir, "state.json"), []byte(`{"version":1}`), 0o600); err != nil {
		t.Fatal(err)
	}
	// And a temporary file left by an interrupted write.
	stale := filepath.Join(dir, ".state.json.123.tmp")
	if err := os.WriteFile(stale, []byte("partial"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := open(t, dir, pki.Options{})
	if a.CACert() == nil {
		t.Fatal("no CA after Open")
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file still there: %v", err)
	}
}

func TestServerCertificate(t *testing.T) {
	a := open(t, t.TempDir(), pki.Options{})
	cert, err := a.ServerCertificate([]string{"gateway.wasmbed.local", "127.0.0.1", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		t.Fatal("Leaf not set")
	}
	if !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageServerAuth) {
		t.Errorf("ExtKeyUsage %v lacks ServerAuth", leaf.ExtKeyUsage)
	}
	if slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		t.Errorf("ExtKeyUsage %v has ClientAuth", leaf.ExtKeyUsage)
	}
	if k, ok := cert.PrivateKey.(*ecdsa.PrivateKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("key %T, want ECDSA P-256", cert.PrivateKey)
	}
	if life := leaf.NotAfter.Sub(leaf.NotBefore); life < 365*24*time.Hour || life > 366*24*time.Hour {
		t.Errorf("lifetime %v, want one year", life)
	}
	for _, host := range []string{"gateway.wasmbed.local", "127.0.0.1", "::1"} {
		t.Run(host, func(t *testing.T) {
			_, err := leaf.Verify(x509.VerifyOptions{
				DNSName:   host,
				Roots:     a.Pool(),
				KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			})
			if err != nil {
				t.Errorf("Verify(%s): %v", host, err)
			}
		})
	}
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "other.example", Roots: a.Pool()}); err == nil {
		t.Error("Verify(other.example) succeeded")
	}
	if _, err := a.CheckDevice(leaf); err == nil {
		t.Error("CheckDevice accepted a server certificate")
	}

	for _, names := range [][]string{nil, {""}, {"bad name"}, {"a..b"}, {"ok.example", "wrong/"}} {
		if _, err := a.ServerCertificate(names); err == nil {
			t.Errorf("ServerCertificate(%q) succeeded, want error", names)
		}
	}
}

func TestProvisionDevice(t *testing.T) {
	a := open(t, t.TempDir(), pki.Options{})
	certPEM, keyPEM, err := a.ProvisionDevice("board-7")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatalf("X509KeyPair: %v", err)
	}
	if b, _ := pem.Decode(keyPEM); b == nil || b.Type != "PRIVATE KEY" {
		t.Errorf("key PEM is not PKCS#8")
	}
	leaf := pair.Leaf
	if leaf.Subject.CommonName != "board-7" {
		t.Errorf("CN %q, want board-7", leaf.Subject.CommonName)
	}
	if err := verifyClient(a, leaf, time.Now()); err != nil {
		t.Errorf("Verify as client: %v", err)
	}
	if name, err := a.CheckDevice(leaf); err != nil || name != "board-7" {
		t.Errorf("CheckDevice = %q, %v; want board-7, nil", name, err)
	}
	if _, _, err := a.ProvisionDevice("Board_7"); err == nil {
		t.Error("ProvisionDevice(Board_7) succeeded, want error")
	}
}

func TestSignDeviceCSR(t *testing.T) {
	start := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	clk := newClock(start)
	a := open(t, t.TempDir(), pki.Options{Now: clk.Now, DeviceCertTTL: 48 * time.Hour})

	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p384Key, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	valid := csrWithKey(t, "dev-1", ecKey)
	tampered := bytes.Clone(valid)
	tampered[len(tampered)-1] ^= 0x01

	tests := []struct {
		name    string
		device  string
		csr     []byte
		wantPub crypto.PublicKey // nil when an error is expected
		wantSub string
	}{
		{name: "ECDSA P-256", device: "dev-1", csr: valid, wantPub: ecKey.Public()},
		{name: "Ed25519", device: "dev-1", csr: csrWithKey(t, "dev-1", edKey), wantPub: edKey.Public()},
		{name: "common name mismatch", device: "dev-2", csr: valid, wantSub: "does not match"},
		{name: "empty common name", device: "dev-1", csr: csrWithKey(t, "", ecKey), wantSub: "does not match"},
		{name: "RSA key", device: "dev-1", csr: csrWithKey(t, "dev-1", rsaKey), wantSub: "unsupported RSA"},
		{name: "P-384 key", device: "dev-1", csr: csrWithKey(t, "dev-1", p384Key), wantSub: "P-384"},
		{name: "garbage", device: "dev-1", csr: []byte("definitely not DER"), wantSub: "malformed"},
		{name: "empty", device: "dev-1", csr: nil, wantSub: "empty"},
		{name: "truncated", device: "dev-1", csr: valid[:len(valid)/2], wantSub: "malformed"},
		{name: "tampered signature", device: "dev-1", csr: tampered, wantSub: "signature"},
		{name: "oversized", device: "dev-1", csr: make([]byte, 1<<20), wantSub: "more than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			der, err := a.SignDeviceCSR(tt.device, tt.csr)
			if tt.wantPub == nil {
				if !errors.Is(err, pki.ErrBadCSR) || !strings.Contains(err.Error(), tt.wantSub) {
					t.Fatalf("SignDeviceCSR(%q) = %v, want ErrBadCSR containing %q", tt.device, err, tt.wantSub)
				}
				return
			}
			if err != nil {
				t.Fatalf("SignDeviceCSR(%q): %v", tt.device, err)
			}
			c := parseCert(t, der)
			if c.Subject.CommonName != tt.device {
				t.Errorf("CN %q, want %q", c.Subject.CommonName, tt.device)
			}
			if !slices.Equal(c.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}) {
				t.Errorf("ExtKeyUsage %v, want [ClientAuth]", c.ExtKeyUsage)
			}
			if c.IsCA {
				t.Error("device certificate is a CA")
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 128 {
				t.Errorf("serial %x is not a positive 128-bit number", c.SerialNumber)
			}
			if want := start.Add(-time.Minute); !c.NotBefore.Equal(want) {
				t.Errorf("NotBefore %v, want %v", c.NotBefore, want)
			}
			if want := start.Add(48 * time.Hour); !c.NotAfter.Equal(want) {
				t.Errorf("NotAfter %v, want %v", c.NotAfter, want)
			}
			if !c.PublicKey.(interface{ Equal(crypto.PublicKey) bool }).Equal(tt.wantPub) {
				t.Error("certificate key is not the CSR's key")
			}
			if err := verifyClient(a, c, start); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}

	t.Run("invalid device name", func(t *testing.T) {
		_, err := a.SignDeviceCSR("Dev-1", valid)
		if err == nil || errors.Is(err, pki.ErrBadCSR) {
			t.Fatalf("SignDeviceCSR(Dev-1) = %v, want a name error that is not ErrBadCSR", err)
		}
	})

	t.Run("serials are distinct", func(t *testing.T) {
		seen := map[string]bool{}
		for range 20 {
			der, err := a.SignDeviceCSR("dev-1", valid)
			if err != nil {
				t.Fatal(err)
			}
			s := parseCert(t, der).SerialNumber.String()
			if seen[s] {
				t.Fatalf("serial %s issued twice", s)
			}
			seen[s] = true
		}
	})
}

func TestToken(t *testing.T) {
	clk := newClock(time.Now())
	dir := t.TempDir()
	a := open(t, dir, pki.Options{Now: clk.Now})

	token, err := a.CreateToken("dev-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^wbt_[A-Za-z0-9_-]{43}$`).MatchString(token) {
		t.Errorf("token %q does not match wbt_ + 43 base64url characters", token)
	}
	for _, file := range []string{"state.json", "state.journal"} {
		state, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(state, []byte(token)) || bytes.Contains(state, []byte(token[4:])) {
			t.Errorf("%s holds the token text", file)
		}
	}

	t.Run("wrong device leaves the token usable", func(t *testing.T) {
		_, _, err := a.Enroll(token, newCSR(t, "dev-2"))
		if !errors.Is(err, pki.ErrBadCSR) || errors.Is(err, pki.ErrTokenInvalid) {
			t.Fatalf("Enroll with CN dev-2 = %v, want ErrBadCSR", err)
		}
		_, _, err = a.Enroll(token, []byte("garbage"))
		if !errors.Is(err, pki.ErrBadCSR) {
			t.Fatalf("Enroll with garbage CSR = %v, want ErrBadCSR", err)
		}
	})

	t.Run("happy path", func(t *testing.T) {
		device, der, err := a.Enroll(token, newCSR(t, "dev-1"))
		if err != nil {
			t.Fatalf("Enroll: %v", err)
		}
		c := parseCert(t, der)
		if device != "dev-1" || c.Subject.CommonName != "dev-1" {
			t.Errorf("Enroll = %q with CN %q, want dev-1", device, c.Subject.CommonName)
		}
		if err := verifyClient(a, c, clk.Now()); err != nil {
			t.Errorf("Verify: %v", err)
		}
	})

	t.Run("reused", func(t *testing.T) {
		_, _, err := a.Enroll(token, newCSR(t, "dev-1"))
		if !errors.Is(err, pki.ErrTokenUsed) || !errors.Is(err, pki.ErrTokenInvalid) {
			t.Fatalf("second Enroll = %v, want ErrTokenUsed", err)
		}
		// Still used after reopening.
		b := open(t, dir, pki.Options{Now: clk.Now})
		if _, _, err := b.Enroll(token, newCSR(t, "dev-1")); !errors.Is(err, pki.ErrTokenUsed) {
			t.Fatalf("Enroll after reopen = %v, want ErrTokenUsed", err)
		}
	})

	t.Run("expired", func(t *testing.T) {
		tok, err := a.CreateToken("dev-3", 10*time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		clk.Advance(10 * time.Minute)
		_, _, err = a.Enroll(tok, newCSR(t, "dev-3"))
		if !errors.Is(err, pki.ErrTokenExpired) || !errors.Is(err, pki.ErrTokenInvalid) {
			t.Fatalf("Enroll with expired token = %v, want ErrTokenExpired", err)
		}
	})

	t.Run("unknown", func(t *testing.T) {
		for _, tok := range []string{
			"wbt_" + strings.Repeat("A", 43),
			"",
			"wbt_",
			"nope",
			token + "A",
			"wbt_" + strings.Repeat("*", 43),
		} {
			_, _, err := a.Enroll(tok, newCSR(t, "dev-1"))
			if !errors.Is(err, pki.ErrTokenUnknown) || !errors.Is(err, pki.ErrTokenInvalid) {
				t.Errorf("Enroll(%q) = %v, want ErrTokenUnknown", tok, err)
			}
		}
	})

	t.Run("survives reopen", func(t *testing.T) {
		tok, err := a.CreateToken("dev-4", time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b := open(t, dir, pki.Options{Now: clk.Now})
		if dev, _, err := b.Enroll(tok, newCSR(t, "dev-4")); err != nil || dev != "dev-4" {
			t.Fatalf("Enroll after reopen = %q, %v; want dev-4", dev, err)
		}
	})

	t.Run("bad arguments", func(t *testing.T) {
		if _, err := a.CreateToken("dev-1", 0); err == nil {
			t.Error("CreateToken with zero ttl succeeded")
		}
		if _, err := a.CreateToken("-dev", time.Hour); err == nil {
			t.Error("CreateToken(-dev) succeeded")
		}
	})
}

func TestEnrollConcurrentUseOfOneToken(t *testing.T) {
	a := open(t, t.TempDir(), pki.Options{})
	token, err := a.CreateToken("dev-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	const n = 8
	csrs := make([][]byte, n)
	for i := range csrs {
		csrs[i] = newCSR(t, "dev-1")
	}
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, _, errs[i] = a.Enroll(token, csrs[i]) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, pki.ErrTokenUsed):
			t.Errorf("Enroll = %v, want nil or ErrTokenUsed", err)
		}
	}
	if ok != 1 {
		t.Errorf("%d enrollments succeeded with one token, want 1", ok)
	}
}

func TestRevocation(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, pki.Options{})

	provPEM, _, err := a.ProvisionDevice("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	prov := parseCertPEM(t, provPEM)
	tok, err := a.CreateToken("dev-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, der, err := a.Enroll(tok, newCSR(t, "dev-1"))
	if err != nil {
		t.Fatal(err)
	}
	enrolled := parseCert(t, der)
	der, err = a.SignDeviceCSR("dev-2", newCSR(t, "dev-2"))
	if err != nil {
		t.Fatal(err)
	}
	other := parseCert(t, der)
	der, err = a.SignDeviceCSR("dev-3", newCSR(t, "dev-3"))
	if err != nil {
		t.Fatal(err)
	}
	single := parseCert(t, der)

	t.Run("by serial", func(t *testing.T) {
		if err := a.RevokeSerial(single.SerialNumber); err != nil {
			t.Fatal(err)
		}
		if err := a.RevokeSerial(single.SerialNumber); err != nil {
			t.Fatalf("second RevokeSerial: %v", err)
		}
		if !a.Revoked(single.SerialNumber) {
			t.Error("Revoked = false after RevokeSerial")
		}
		// A serial the authority never issued can be revoked too.
		if err := a.RevokeSerial(big.NewInt(12345)); err != nil {
			t.Fatal(err)
		}
		for _, s := range []*big.Int{nil, big.NewInt(0), big.NewInt(-5)} {
			if err := a.RevokeSerial(s); err == nil {
				t.Errorf("RevokeSerial(%v) succeeded", s)
			}
		}
	})

	t.Run("by device", func(t *testing.T) {
		got, err := a.RevokeDevice("dev-1")
		if err != nil {
			t.Fatal(err)
		}
		want := []*big.Int{prov.SerialNumber, enrolled.SerialNumber}
		slices.SortFunc(want, (*big.Int).Cmp)
		if !slices.EqualFunc(got, want, func(x, y *big.Int) bool { return x.Cmp(y) == 0 }) {
			t.Errorf("RevokeDevice(dev-1) = %v, want %v", got, want)
		}
		if again, err := a.RevokeDevice("dev-1"); err != nil || len(again) != 0 {
			t.Errorf("second RevokeDevice(dev-1) = %v, %v; want none", again, err)
		}
		if none, err := a.RevokeDevice("never-seen"); err != nil || len(none) != 0 {
			t.Errorf("RevokeDevice(never-seen) = %v, %v; want none", none, err)
		}
		if _, err := a.RevokeDevice("Not Valid"); err == nil {
			t.Error("RevokeDevice(Not Valid) succeeded")
		}
	})

	check := func(t *testing.T, a *pki.Authority) {
		for _, c := range []*x509.Certificate{prov, enrolled, single} {
			if !a.Revoked(c.SerialNumber) {
				t.Errorf("%s serial %x not revoked", c.Subject.CommonName, c.SerialNumber)
			}
			if _, err := a.CheckDevice(c); !errors.Is(err, pki.ErrRevoked) {
				t.Errorf("CheckDevice(%s) = %v, want ErrRevoked", c.Subject.CommonName, err)
			}
		}
		if !a.Revoked(big.NewInt(12345)) {
			t.Error("unknown serial 12345 not revoked")
		}
		if a.Revoked(other.SerialNumber) {
			t.Error("dev-2 revoked")
		}
		if name, err := a.CheckDevice(other); err != nil || name != "dev-2" {
			t.Errorf("CheckDevice(dev-2) = %q, %v; want dev-2", name, err)
		}
		if a.Revoked(nil) {
			t.Error("Revoked(nil) = true")
		}
	}
	t.Run("in memory", func(t *testing.T) { check(t, a) })
	t.Run("after reopen", func(t *testing.T) { check(t, open(t, dir, pki.Options{})) })

	t.Run("new certificate after revocation", func(t *testing.T) {
		der, err := a.SignDeviceCSR("dev-1", newCSR(t, "dev-1"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.CheckDevice(parseCert(t, der)); err != nil {
			t.Errorf("CheckDevice(renewed dev-1) = %v", err)
		}
	})
}

func TestCheckDevice(t *testing.T) {
	dir := t.TempDir()
	a := open(t, dir, pki.Options{})
	signer := caSigner(t, dir)
	now := time.Now()
	var serial int64

	// issue signs a certificate with the real CA key but arbitrary fields.
	issue := func(t *testing.T, cn string, eku []x509.ExtKeyUsage, notAfter time.Time) *x509.Certificate {
		t.Helper()
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		serial++
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(now.UnixNano() + serial),
			Subject:      pkix.Name{CommonName: cn},
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     notAfter,
			ExtKeyUsage:  eku,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, a.CACert(), &key.PublicKey, signer)
		if err != nil {
			t.Fatal(err)
		}
		return parseCert(t, der)
	}
	client := []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	server, err := a.ServerCertificate([]string{"gw.example"})
	if err != nil {
		t.Fatal(err)
	}
	foreignDir := t.TempDir()
	foreign := open(t, foreignDir, pki.Options{})
	foreignPEM, _, err := foreign.ProvisionDevice("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	revokedPEM, _, err := a.ProvisionDevice("dev-9")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RevokeDevice("dev-9"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		leaf    *x509.Certificate
		want    string
		wantErr error
		wantSub string
	}{
		{name: "valid", leaf: issue(t, "dev-1", client, now.Add(time.Hour)), want: "dev-1"},
		{name: "revoked", leaf: parseCertPEM(t, revokedPEM), wantErr: pki.ErrRevoked},
		{name: "server certificate", leaf: server.Leaf, wantSub: "client authentication"},
		{name: "no extended key usage", leaf: issue(t, "dev-1", nil, now.Add(time.Hour)), wantSub: "client authentication"},
		{name: "empty common name", leaf: issue(t, "", client, now.Add(time.Hour)), wantSub: "empty common name"},
		{name: "uppercase name", leaf: issue(t, "Dev-1", client, now.Add(time.Hour)), wantSub: "lowercase"},
		{name: "name with a dot", leaf: issue(t, "dev.1", client, now.Add(time.Hour)), wantSub: "lowercase"},
		{name: "name too long", leaf: issue(t, strings.Repeat("a", 64), client, now.Add(time.Hour)), wantSub: "more than 63"},
		{name: "expired", leaf: issue(t, "dev-1", client, now.Add(-time.Minute)), wantSub: "not at"},
		{name: "other authority", leaf: parseCertPEM(t, foreignPEM), wantSub: "not issued by this authority"},
		{name: "nil", leaf: nil, wantSub: "no certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := a.CheckDevice(tt.leaf)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("CheckDevice = %q, %v; want %v", got, err, tt.wantErr)
				}
			case tt.wantSub != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
					t.Fatalf("CheckDevice = %q, %v; want error containing %q", got, err, tt.wantSub)
				}
				if errors.Is(err, pki.ErrRevoked) {
					t.Errorf("CheckDevice error %v matches ErrRevoked", err)
				}
			default:
				if err != nil || got != tt.want {
					t.Fatalf("CheckDevice = %q, %v; want %q", got, err, tt.want)
				}
			}
		})
	}
}

func TestExpiredDeviceCertificate(t *testing.T) {
	past := time.Now().Add(-60 * 24 * time.Hour)
	a := open(t, t.TempDir(), pki.Options{
		Now:           func() time.Time { return past },
		DeviceCertTTL: time.Hour,
	})
	certPEM, _, err := a.ProvisionDevice("old-board")
	if err != nil {
		t.Fatal(err)
	}
	c := parseCertPEM(t, certPEM)
	if err := verifyClient(a, c, past.Add(30*time.Minute)); err != nil {
		t.Fatalf("Verify within validity: %v", err)
	}
	err = verifyClient(a, c, time.Time{}) // zero CurrentTime: the real now
	var invalid x509.CertificateInvalidError
	if !errors.As(err, &invalid) || invalid.Reason != x509.Expired {
		t.Fatalf("Verify now = %v, want an Expired certificate error", err)
	}
}

func TestValidDeviceName(t *testing.T) {
	tests := []struct {
		name    string
		wantSub string // empty: valid
	}{
		{name: "a"},
		{name: "0"},
		{name: "dev-1"},
		{name: "stm32-board-42"},
		{name: "a--b"},
		{name: strings.Repeat("a", 63)},
		{name: "", wantSub: "empty"},
		{name: strings.Repeat("a", 64), wantSub: "more than 63"},
		{name: "-dev", wantSub: "start"},
		{name: "dev-", wantSub: "end"},
		{name: "-", wantSub: "start"},
		{name: "Dev", wantSub: "'D'"},
		{name: "dev_1", wantSub: "'_'"},
		{name: "dev.1", wantSub: "'.'"},
		{name: "dev 1", wantSub: "' '"},
		{name: "dév", wantSub: "'é'"},
		{name: "dev\x00", wantSub: "offset 3"},
		{name: "\xff", wantSub: "lowercase"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := pki.ValidDeviceName(tt.name)
			if tt.wantSub == "" {
				if err != nil {
					t.Fatalf("ValidDeviceName(%q) = %v, want nil", tt.name, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantSub) {
				t.Fatalf("ValidDeviceName(%q) = %v, want error containing %q", tt.name, err, tt.wantSub)
			}
		})
	}
}

func TestNewCSR(t *testing.T) {
	csrDER, keyPEM, err := pki.NewCSR("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	csr, err := x509.ParseCertificateRequest(csrDER)
	if err != nil {
		t.Fatal(err)
	}
	if err := csr.CheckSignature(); err != nil {
		t.Errorf("CheckSignature: %v", err)
	}
	if csr.Subject.CommonName != "dev-1" {
		t.Errorf("CN %q, want dev-1", csr.Subject.CommonName)
	}
	b, _ := pem.Decode(keyPEM)
	if b == nil || b.Type != "PRIVATE KEY" {
		t.Fatalf("key PEM %q is not PKCS#8", keyPEM)
	}
	key, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !key.(*ecdsa.PrivateKey).PublicKey.Equal(csr.PublicKey) {
		t.Error("key does not match the CSR")
	}
	if _, _, err := pki.NewCSR("UPPER"); err == nil {
		t.Error("NewCSR(UPPER) succeeded")
	}
}

// TestMutualTLS runs a TLS 1.3 handshake on loopback between a gateway-style
// server and an enrolled device, before and after revocation.
func TestMutualTLS(t *testing.T) {
	a := open(t, t.TempDir(), pki.Options{})
	serverCert, err := a.ServerCertificate([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	// Cleanups run last-registered first: close the listener, then wait
	// for the accept loop to return.
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(func() { ln.Close() })

	type result struct {
		device string
		err    error
	}
	results := make(chan result, 4)
	serverConf := &tls.Config{
		Certificates: []tls.Certificate{serverCert},
		ClientCAs:    a.Pool(),
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
		VerifyConnection: func(cs tls.ConnectionState) error {
			_, err := a.CheckDevice(cs.PeerCertificates[0])
			return err
		},
	}
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			tc := tls.Server(c, serverConf)
			var r result
			if r.err = tc.Handshake(); r.err == nil {
				r.device, r.err = a.CheckDevice(tc.ConnectionState().PeerCertificates[0])
				_, _ = tc.Write([]byte("ok"))
			}
			tc.Close()
			results <- r
		}
	})

	token, err := a.CreateToken("dev-1", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	csr, keyPEM, err := pki.NewCSR("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	_, der, err := a.Enroll(token, csr)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	dial := func() error {
		c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{
			Certificates: []tls.Certificate{pair},
			RootCAs:      a.Pool(),
			MinVersion:   tls.VersionTLS13,
		})
		if err != nil {
			return err
		}
		defer c.Close()
		// In TLS 1.3 the client learns of a rejected certificate on its
		// first read.
		_, err = io.ReadAll(c)
		return err
	}

	if err := dial(); err != nil {
		t.Fatalf("handshake with enrolled device: %v", err)
	}
	if r := <-results; r.err != nil || r.device != "dev-1" {
		t.Errorf("server saw device %q, %v; want dev-1", r.device, r.err)
	}
	if _, err := a.RevokeDevice("dev-1"); err != nil {
		t.Fatal(err)
	}
	if err := dial(); err == nil {
		t.Error("handshake with revoked device succeeded")
	}
	if r := <-results; !errors.Is(r.err, pki.ErrRevoked) {
		t.Errorf("server handshake with revoked device = %v, want ErrRevoked", r.err)
	}
}

// FuzzSignDeviceCSR feeds outside bytes to SignDeviceCSR: it must never
// panic, every rejection must wrap ErrBadCSR, and every certificate it issues
// must name the device and be a client certificate.
func FuzzSignDeviceCSR(f *testing.F) {
	a := open(f, f.TempDir(), pki.Options{})
	valid := newCSR(f, "fuzz-dev")
	f.Add(valid)
	_, edKey, _ := ed25519.GenerateKey(rand.Reader)
	f.Add(csrWithKey(f, "fuzz-dev", edKey))
	f.Add(newCSR(f, "other-dev"))
	tampered := bytes.Clone(valid)
	tampered[len(tampered)-1] ^= 1
	f.Add(tampered)
	f.Add([]byte{})
	f.Add([]byte{0x30, 0x82, 0xff, 0xff})

	f.Fuzz(func(t *testing.T, csr []byte) {
		der, err := a.SignDeviceCSR("fuzz-dev", csr)
		if err != nil {
			if !errors.Is(err, pki.ErrBadCSR) {
				t.Fatalf("SignDeviceCSR error %v does not wrap ErrBadCSR", err)
			}
			return
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatalf("issued certificate does not parse: %v", err)
		}
		if c.Subject.CommonName != "fuzz-dev" || !slices.Contains(c.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
			t.Fatalf("issued certificate CN %q usage %v", c.Subject.CommonName, c.ExtKeyUsage)
		}
	})
}

// FuzzEnroll feeds outside tokens and CSRs to Enroll: it must never panic and
// must fail only with a token or CSR rejection.
func FuzzEnroll(f *testing.F) {
	a := open(f, f.TempDir(), pki.Options{})
	token, err := a.CreateToken("fuzz-dev", time.Hour)
	if err != nil {
		f.Fatal(err)
	}
	valid := newCSR(f, "fuzz-dev")
	f.Add(token, valid)
	f.Add(token, []byte("garbage"))
	f.Add("wbt_"+strings.Repeat("A", 43), valid)
	f.Add("", []byte{})

	f.Fuzz(func(t *testing.T, tok string, csr []byte) {
		device, der, err := a.Enroll(tok, csr)
		if err != nil {
			if !errors.Is(err, pki.ErrTokenInvalid) && !errors.Is(err, pki.ErrBadCSR) {
				t.Fatalf("Enroll error %v is neither a token nor a CSR rejection", err)
			}
			return
		}
		if device != "fuzz-dev" || len(der) == 0 {
			t.Fatalf("Enroll = %q, %d bytes", device, len(der))
		}
	})
}

// benchAuthority opens an authority whose clock moves past the device
// certificate lifetime on every tick, so that each save prunes the previous
// records and the state stays at one certificate however large b.N grows.
// BenchmarkSaveState measures how the rewrite scales with the record count.
func benchAuthority(b *testing.B) (*pki.Authority, func()) {
	clk := newClock(time.Now())
	a := open(b, b.TempDir(), pki.Options{Now: clk.Now, DeviceCertTTL: time.Minute})
	return a, func() { clk.Advance(2 * time.Minute) }
}

func BenchmarkSignDeviceCSR(b *testing.B) {
	a, tick := benchAuthority(b)
	csr := newCSR(b, "bench-dev")
	for b.Loop() {
		tick()
		if _, err := a.SignDeviceCSR("bench-dev", csr); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkProvisionDevice(b *testing.B) {
	a, tick := benchAuthority(b)
	for b.Loop() {
		tick()
		if _, _, err := a.ProvisionDevice("bench-dev"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCheckDevice(b *testing.B) {
	a := open(b, b.TempDir(), pki.Options{})
	certPEM, _, err := a.ProvisionDevice("bench-dev")
	if err != nil {
		b.Fatal(err)
	}
	leaf := parseCertPEM(b, certPEM)
	for b.Loop() {
		if _, err := a.CheckDevice(leaf); err != nil {
			b.Fatal(err)
		}
	}
}

func TestEnrolled(t *testing.T) {
	a, err := pki.Open(t.TempDir(), pki.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if a.Enrolled("dev-1") {
		t.Fatal("Enrolled before any certificate")
	}
	if _, _, err := a.ProvisionDevice("dev-1"); err != nil {
		t.Fatal(err)
	}
	if !a.Enrolled("dev-1") || a.Enrolled("dev-2") {
		t.Fatal("Enrolled does not follow the issued certificate")
	}
	if _, err := a.RevokeDevice("dev-1"); err != nil {
		t.Fatal(err)
	}
	if a.Enrolled("dev-1") {
		t.Fatal("Enrolled after revocation")
	}
}

// TestOpenExternalCA: daemons that share a CA (a mounted Secret) issue and
// accept each other's certificates, each with a state of its own, and the
// CA directory is only read.
func TestOpenExternalCA(t *testing.T) {
	caDir := filepath.Join(t.TempDir(), "ca")
	open(t, caDir, pki.Options{}) // makes ca.crt and ca.key
	if err := os.Remove(filepath.Join(caDir, "state.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(caDir, 0o500); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(caDir, 0o700) })

	aDir := filepath.Join(t.TempDir(), "a")
	a := open(t, aDir, pki.Options{CADir: caDir})
	b := open(t, filepath.Join(t.TempDir(), "b"), pki.Options{CADir: caDir})
	if !a.CACert().Equal(b.CACert()) {
		t.Fatal("two authorities on one CA directory have different CAs")
	}
	certPEM, _, err := a.ProvisionDevice("dev-1")
	if err != nil {
		t.Fatal(err)
	}
	if err := verifyClient(b, parseCertPEM(t, certPEM), time.Now()); err != nil {
		t.Errorf("b refuses a's certificate: %v", err)
	}
	if entries, _ := os.ReadDir(caDir); len(entries) != 2 {
		t.Errorf("CA directory holds %d files, want ca.crt and ca.key only", len(entries))
	}
	// Reopening keeps the state: the device issued before is enrolled.
	if !open(t, aDir, pki.Options{CADir: caDir}).Enrolled("dev-1") {
		t.Error("reopened authority forgot dev-1")
	}
	if b.Enrolled("dev-1") {
		t.Error("b's state holds a's device")
	}

	if _, err := pki.Open(filepath.Join(t.TempDir(), "c"), pki.Options{CADir: t.TempDir()}); err == nil {
		t.Error("Open with an empty CA directory succeeded")
	}
}
