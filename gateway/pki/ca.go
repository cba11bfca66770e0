package pki

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
)

// caCommonName is the subject common name of every Wasmbed CA.
const caCommonName = "Wasmbed CA"

// PEM block types written and read by this package.
const (
	pemCertificate = "CERTIFICATE"
	pemPrivateKey  = "PRIVATE KEY"    // PKCS#8
	pemECKey       = "EC PRIVATE KEY" // SEC 1, accepted when loading the CA
)

// serialLimit bounds certificate serial numbers to 128 random bits.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 128)

// randomSerial returns a positive serial number of up to 128 random bits, as
// RFC 5280 section 4.1.2.2 recommends for unpredictability.
func randomSerial() (*big.Int, error) {
	for {
		n, err := rand.Int(rand.Reader, serialLimit)
		if err != nil {
			return nil, fmt.Errorf("generate serial number: %w", err)
		}
		if n.Sign() > 0 {
			return n, nil
		}
	}
}

// createCA generates the CA key and self-signed certificate and writes them.
func (a *Authority) createCA(certPath, keyPath string) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate ca key: %w", err)
	}
	serial, err := randomSerial()
	if err != nil {
		return fmt.Errorf("create ca: %w", err)
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: caCommonName},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(caCertTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("create ca certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("parse ca certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return fmt.Errorf("marshal ca key: %w", err)
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: pemPrivateKey, Bytes: keyDER})
	certPEM := pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: der})
	if err := writeFileAtomic(keyPath, keyPEM, 0o600); err != nil {
		return fmt.Errorf("write ca key: %w", err)
	}
	if err := writeFileAtomic(certPath, certPEM, 0o644); err != nil {
		return fmt.Errorf("write ca certificate: %w", err)
	}
	a.ca, a.caKey, a.caPEM = cert, key, certPEM
	return nil
}

// loadCA reads and cross-checks ca.crt and ca.key.
func (a *Authority) loadCA(certPath, keyPath string) error {
	certPEM, err := os.ReadFile(certPath)
	if err != nil {
		return fmt.Errorf("load ca certificate: %w", err)
	}
	block, _ := pem.Decode(certPEM)
	if block == nil || block.Type != pemCertificate {
		return fmt.Errorf("load ca certificate %s: no %s PEM block", certPath, pemCertificate)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return fmt.Errorf("load ca certificate %s: %w", certPath, err)
	}
	if !cert.IsCA {
		return fmt.Errorf("load ca certificate %s: not a CA certificate", certPath)
	}

	keyFile, err := os.ReadFile(keyPath)
	if err != nil {
		return fmt.Errorf("load ca key: %w", err)
	}
	key, err := parseCAKey(keyFile)
	if err != nil {
		return fmt.Errorf("load ca key %s: %w", keyPath, err)
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return fmt.Errorf("load ca key %s: key does not match %s", keyPath, certPath)
	}
	a.ca, a.caKey = cert, key
	a.caPEM = pem.EncodeToMemory(&pem.Block{Type: pemCertificate, Bytes: cert.Raw})
	return nil
}

// parseCAKey decodes an ECDSA P-256 private key from PKCS#8 or SEC 1 PEM.
func parseCAKey(data []byte) (*ecdsa.PrivateKey, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	var key *ecdsa.PrivateKey
	switch block.Type {
	case pemPrivateKey:
		k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		ec, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, fmt.Errorf("key is %T, want ECDSA", k)
		}
		key = ec
	case pemECKey:
		k, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, err
		}
		key = k
	default:
		return nil, fmt.Errorf("unexpected PEM block %q", block.Type)
	}
	if key.Curve != elliptic.P256() {
		return nil, fmt.Errorf("key curve is %s, want P-256", key.Curve.Params().Name)
	}
	return key, nil
}
