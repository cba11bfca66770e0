package daemon

import (
	"context"
	"crypto/x509"
	"errors"
	"math/big"
	"net/url"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// TestAdmission checks the admission of certificates against Devices of a
// real embedded store: a certificate for no Device, or issued before its
// Device was created, is refused as revoked; one issued since is let in.
func TestAdmission(t *testing.T) {
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	d, err := st.Devices().Create(context.Background(), &v1alpha1.Device{
		ObjectMeta: metav1.ObjectMeta{Name: "adm-1"}, Spec: v1alpha1.DeviceSpec{Board: "mps2-an385"},
	})
	if err != nil {
		t.Fatal(err)
	}
	created := d.CreationTimestamp.Time
	a := admission{devices: st.Devices(), cached: st.Devices()}
	cert := func(issued time.Time, uid string) *x509.Certificate {
		c := &x509.Certificate{SerialNumber: big.NewInt(7), NotBefore: issued.Add(-certBackdate)}
		if uid != "" {
			c.URIs = []*url.URL{{Scheme: "urn", Opaque: "uuid:" + uid}}
		}
		return c
	}
	for _, tc := range []struct {
		name, device string
		issued       time.Time
		uid          string
		want         string // "" admits
	}{
		{"issued since", "adm-1", created.Add(time.Second), "", ""},
		{"issued with the clocks a minute apart", "adm-1", created.Add(-time.Minute), "", ""},
		{"issued for an earlier device", "adm-1", created.Add(-time.Hour), "", "earlier device of that name"},
		{"no device", "adm-2", created, "", "not registered"},
		{"bound to this device", "adm-1", created.Add(-time.Hour), string(d.UID), ""},
		{"bound to an earlier device, issued since", "adm-1", created.Add(time.Second), "0b5e5e1e-0000-4000-8000-000000000000", "earlier device named adm-1"},
	} {
		err := a.admit(tc.device, cert(tc.issued, tc.uid))
		var pe *protocol.Error
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: admit = %v, want nil", tc.name, err)
		case tc.want != "" && (!errors.As(err, &pe) || pe.Code != protocol.CodeRevoked || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: admit = %v, want a revoked error saying %q", tc.name, err, tc.want)
		}
	}
}
