package pki_test

import (
	"crypto/x509"
	"encoding/pem"
	"testing"

	"wasmbed.io/wasmbed/gateway/pki"
)

// TestDeviceUID: a certificate issued for a Device's UID names it, one
// issued for none does not, and a renewal keeps the UID it is given.
func TestDeviceUID(t *testing.T) {
	a := open(t, t.TempDir(), pki.Options{})
	parse := func(certPEM []byte) *x509.Certificate {
		t.Helper()
		blk, _ := pem.Decode(certPEM)
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	bound, _, err := a.ProvisionDeviceFor("bound", "5e1f0a3c-1d2e-4f60-8a7b-9c0d1e2f3a4b")
	if err != nil {
		t.Fatal(err)
	}
	if uid := pki.DeviceUID(parse(bound)); uid != "5e1f0a3c-1d2e-4f60-8a7b-9c0d1e2f3a4b" {
		t.Errorf("DeviceUID = %q", uid)
	}
	unbound, _, err := a.ProvisionDevice("unbound")
	if err != nil {
		t.Fatal(err)
	}
	if uid := pki.DeviceUID(parse(unbound)); uid != "" {
		t.Errorf("DeviceUID of a certificate bound to none = %q", uid)
	}
	csr, _, err := pki.NewCSR("bound")
	if err != nil {
		t.Fatal(err)
	}
	der, err := a.SignDeviceCSRFor("bound", "5e1f0a3c-1d2e-4f60-8a7b-9c0d1e2f3a4b", csr)
	if err != nil {
		t.Fatal(err)
	}
	renewed, err := x509.ParseCertificate(der)
	if err != nil || pki.DeviceUID(renewed) != "5e1f0a3c-1d2e-4f60-8a7b-9c0d1e2f3a4b" {
		t.Errorf("renewed certificate: %v, uid %q", err, pki.DeviceUID(renewed))
	}
}
