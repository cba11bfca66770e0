package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway/pki"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// certSkew is how far the clocks of the daemon that issued a certificate
// and of the store that dated a Device may disagree.
const certSkew = 2 * time.Minute

// certBackdate is how far the authority dates a certificate back
// (gateway/pki: one minute, for clock skew).
const certBackdate = time.Minute

// admission decides which devices with a certificate of the shared CA may
// open a session: those with a Device, holding a certificate issued for
// that Device rather than for an earlier one of the same name. Revocation
// is per daemon, so without this a deleted device, or the old board of a
// re-created one, could still dial a gateway whose daemon did not issue
// its certificate.
type admission struct {
	devices, cached store.Resource[*v1alpha1.Device]
}

func (a admission) admit(device string, cert *x509.Certificate) error {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	d, err := a.cached.Get(ctx, device)
	if errors.Is(err, store.ErrNotFound) {
		// Created a moment ago, it may not be cached yet.
		d, err = a.devices.Get(ctx, device)
	}
	switch {
	case errors.Is(err, store.ErrNotFound):
		return protocol.Errorf(protocol.CodeRevoked, "device %s is not registered (deleted, or never created)", device)
	case err != nil:
		return protocol.Errorf(protocol.CodeInternal, "look up device %s: %v", device, err)
	}
	if uid := pki.DeviceUID(cert); uid != "" {
		if uid != string(d.UID) {
			return protocol.Errorf(protocol.CodeRevoked,
				"certificate %x was issued for an earlier device named %s (uid %s; this one is %s)", cert.SerialNumber, device, uid, d.UID)
		}
		return nil
	}
	// A certificate bound to no UID (from before UIDs were recorded) is
	// told by its date.
	issued := cert.NotBefore.Add(certBackdate)
	if issued.Add(certSkew).Before(d.CreationTimestamp.Time) {
		return protocol.Errorf(protocol.CodeRevoked,
			"certificate %x of %s was issued at %s, before this device was created at %s: it belongs to an earlier device of that name",
			cert.SerialNumber, device, issued.UTC().Format(time.RFC3339), d.CreationTimestamp.UTC().Format(time.RFC3339))
	}
	return nil
}
