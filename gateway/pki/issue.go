package pki

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
	"time"
)

// maxCSRSize bounds the DER size of a certificate signing request. A CSR
// with a P-256 or Ed25519 key and a short subject is a few hundred bytes.
const maxCSRSize = 16 << 10

// ServerCertificate issues a fresh TLS server certificate for a gateway:
// a new ECDSA P-256 key, valid one year (never past the CA's own expiry),
// with ExtKeyUsageServerAuth. Each name is either an IP address, which
// becomes an IP SAN, or a DNS name (a leading "*." wildcard is allowed),
// which becomes a DNS SAN; the first name is also the common name. The
// certificate is not recorded in the state file, and Leaf is set.
func (a *Authority) ServerCertificate(names []string) (tls.Certificate, error) {
	if len(names) == 0 {
		return tls.Certificate{}, errors.New("issue server certificate: no names")
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: names[0]},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			continue
		}
		if err := validHostName(n); err != nil {
			return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
		}
		tmpl.DNSNames = append(tmpl.DNSNames, n)
	}
	var err error
	if tmpl.NotBefore, tmpl.NotAfter, err = a.validity(serverCertTTL); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	if tmpl.SerialNumber, err = randomSerial(); err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: generate key: %w", err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.ca, &key.PublicKey, a.caKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("issue server certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// ProvisionDevice creates a key pair and client certificate for a device the
// platform creates itself (pre-provisioned boards) and records the
// certificate. It returns the certificate as PEM and the ECDSA P-256 private
// key as PKCS#8 PEM; the key is not kept by the authority.
func (a *Authority) ProvisionDevice(name string) (certPEM, keyPEM []byte, err error) {
	return a.ProvisionDeviceFor(name, "")
}

// ProvisionDeviceFor is ProvisionDevice for the Device whose UID is uid
// (see DeviceUID); "" binds the certificate to no UID.
func (a *Authority) ProvisionDeviceFor(name, uid string) (certPEM, keyPEM []byte, err error) {
	if err := ValidDeviceName(name); err != nil {
		return nil, nil, fmt.Errorf("provision device: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("provision device %s: generate key: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("provision device %s: marshal key: %w", name, err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	der, serial, err := a.issueLocked(name, uid, &key.PublicKey)
	if err != nil {
		return nil, nil, fmt.Errorf("provision device %s: %w", name, err)
	}
	if err := a.persistLocked(change{issued: []string{serial}}); err != nil {
		delete(a.st.Issued, serial)
		return nil, nil, fmt.Errorf("provision device %s: %w", name, err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// SignDeviceCSR verifies a PKCS#10 certificate signing request (DER) from
// device name and issues its client certificate, for enrollment and for
// renewal. The CSR's signature must verify, its subject common name must be
// name, and its key must be ECDSA P-256 or Ed25519; otherwise the error
// wraps ErrBadCSR. Everything else in the CSR (other subject fields,
// requested extensions) is ignored.
//
// The certificate has common name name, ExtKeyUsageClientAuth, a random
// 128-bit serial, NotBefore one minute ago and NotAfter DeviceCertTTL from
// now (never past the CA's own expiry). It is recorded (serial, device,
// expiry) so RevokeDevice can find it.
func (a *Authority) SignDeviceCSR(name string, csrDER []byte) (certDER []byte, err error) {
	return a.SignDeviceCSRFor(name, "", csrDER)
}

// SignDeviceCSRFor is SignDeviceCSR for the Device whose UID is uid (a
// renewal keeps the UID of the certificate it renews).
func (a *Authority) SignDeviceCSRFor(name, uid string, csrDER []byte) (certDER []byte, err error) {
	if err := ValidDeviceName(name); err != nil {
		return nil, fmt.Errorf("sign device csr: %w", err)
	}
	csr, err := parseCSR(csrDER)
	if err == nil {
		err = checkCSRName(csr, name)
	}
	if err != nil {
		return nil, fmt.Errorf("sign device csr for %s: %w", name, err)
	}

	a.mu.Lock()
	defer a.mu.Unlock()
	der, serial, err := a.issueLocked(name, uid, csr.PublicKey)
	if err != nil {
		return nil, fmt.Errorf("sign device csr for %s: %w", name, err)
	}
	if err := a.persistLocked(change{issued: []string{serial}}); err != nil {
		delete(a.st.Issued, serial)
		return nil, fmt.Errorf("sign device csr for %s: %w", name, err)
	}
	return der, nil
}

// issueLocked signs a device client certificate for pub and records it in
// the state. It returns the DER and the state key of its serial. The caller
// holds a.mu for writing and saves the state, deleting the record again if
// saving fails.
func (a *Authority) issueLocked(name, uid string, pub any) (der []byte, serial string, err error) {
	notBefore, notAfter, err := a.validity(a.ttl)
	if err != nil {
		return nil, "", err
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             notBefore,
		NotAfter:              notAfter,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	if uid != "" {
		tmpl.URIs = []*url.URL{uidURN(uid)}
	}
	// A collision of 128 random bits does not happen in practice; the loop
	// makes the uniqueness of serials a checked invariant nonetheless.
	for {
		if tmpl.SerialNumber, err = randomSerial(); err != nil {
			return nil, "", err
		}
		serial = serialKey(tmpl.SerialNumber)
		if a.st.Issued[serial] == nil && a.st.Revoked[serial] == nil {
			break
		}
	}
	der, err = x509.CreateCertificate(rand.Reader, tmpl, a.ca, pub, a.caKey)
	if err != nil {
		return nil, "", fmt.Errorf("create certificate: %w", err)
	}
	a.st.Issued[serial] = &issuedRecord{Device: name, NotAfter: notAfter, Fingerprint: fingerprint(der)}
	a.issuedTo[name] = append(a.issuedTo[name], serial)
	return der, serial, nil
}

// validity returns the validity period of a certificate issued now for ttl:
// backdated by one minute for clock skew, and cut at the CA's expiry.
// Times are in UTC and whole seconds, as they are encoded.
func (a *Authority) validity(ttl time.Duration) (notBefore, notAfter time.Time, err error) {
	now := a.now().UTC().Truncate(time.Second)
	if !now.Before(a.ca.NotAfter) {
		return time.Time{}, time.Time{}, fmt.Errorf("ca certificate expired at %s", a.ca.NotAfter.Format(time.RFC3339))
	}
	notBefore, notAfter = now.Add(-backdate), now.Add(ttl)
	if notAfter.After(a.ca.NotAfter) {
		notAfter = a.ca.NotAfter
	}
	return notBefore, notAfter, nil
}

// parseCSR parses a PKCS#10 CSR from outside bytes and checks its key type
// and signature. Every error wraps ErrBadCSR.
func parseCSR(der []byte) (*x509.CertificateRequest, error) {
	if len(der) == 0 {
		return nil, fmt.Errorf("%w: empty", ErrBadCSR)
	}
	if len(der) > maxCSRSize {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadCSR, len(der), maxCSRSize)
	}
	csr, err := x509.ParseCertificateRequest(der)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed: %w", ErrBadCSR, err)
	}
	// The key type is checked before the signature so that no time is spent
	// verifying signatures made with keys that would be refused anyway.
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ECDSA key on curve %s; want P-256", ErrBadCSR, k.Curve.Params().Name)
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: unsupported %v public key; want ECDSA P-256 or Ed25519", ErrBadCSR, csr.PublicKeyAlgorithm)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: signature does not verify: %w", ErrBadCSR, err)
	}
	return csr, nil
}

// checkCSRName checks that the CSR names device name. The error wraps
// ErrBadCSR.
func checkCSRName(csr *x509.CertificateRequest, name string) error {
	if cn := csr.Subject.CommonName; cn != name {
		return fmt.Errorf("%w: common name %s does not match device %q", ErrBadCSR, quoteShort(cn), name)
	}
	return nil
}

// NewCSR is a helper for device runtimes: it creates an ECDSA P-256 key and a
// PKCS#10 CSR (DER) with common name name, and returns the key as PKCS#8 PEM.
func NewCSR(name string) (csrDER, keyPEM []byte, err error) {
	if err := ValidDeviceName(name); err != nil {
		return nil, nil, fmt.Errorf("create csr: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("create csr for %s: generate key: %w", name, err)
	}
	csrDER, err = x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{
		Subject: pkix.Name{CommonName: name},
	}, key)
	if err != nil {
		return nil, nil, fmt.Errorf("create csr for %s: %w", name, err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("create csr for %s: marshal key: %w", name, err)
	}
	return csrDER, pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: keyDER}), nil
}

// validHostName checks a DNS name for a server certificate SAN: labels of
// letters, digits, '-' and '_', optionally led by a "*." wildcard.
func validHostName(name string) error {
	if name == "" {
		return errors.New("empty server name")
	}
	if len(name) > 253 {
		return fmt.Errorf("server name is %d bytes long, more than 253", len(name))
	}
	for _, label := range strings.Split(strings.TrimPrefix(name, "*."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("server name %s is neither an IP address nor a DNS name: empty or over-long label", quoteShort(name))
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return fmt.Errorf("server name %s is neither an IP address nor a DNS name: character %q", quoteShort(name), r)
			}
		}
	}
	return nil
}

// A device certificate names the Device it was issued for by the Device's
// UID, as a URI subject alternative name urn:uuid:<uid> (RFC 4122): a
// Device deleted and created again under the same name has a new UID, so
// the certificates of the first one are told from the second's.
func uidURN(uid string) *url.URL { return &url.URL{Scheme: "urn", Opaque: "uuid:" + uid} }

// DeviceUID is the UID of the Device cert was issued for, or "" for a
// certificate bound to none (issued before UIDs were recorded, or by
// ProvisionDevice or SignDeviceCSR without one).
func DeviceUID(cert *x509.Certificate) string {
	for _, u := range cert.URIs {
		if u.Scheme == "urn" {
			if uid, ok := strings.CutPrefix(u.Opaque, "uuid:"); ok {
				return uid
			}
		}
	}
	return ""
}
