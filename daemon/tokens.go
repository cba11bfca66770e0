package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway/pki"
)

// TokensAnnotation holds a device's outstanding enrollment tokens: a JSON
// object from the hex SHA-256 of each token's text to its lifetime and use.
// Keeping them on the Device, in the store every daemon of a cluster
// shares, lets a token issued by one daemon enroll the device at any; and
// deleting the device deletes its tokens.
const TokensAnnotation = "wasmbed.io/enrollment-tokens"

// tokenKeep is how long a used or expired token stays recorded, so that
// its reuse is refused as such rather than as unknown.
const tokenKeep = 24 * time.Hour

// tokenEntry is one token in TokensAnnotation.
type tokenEntry struct {
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires"`
	Used    time.Time `json:"used,omitzero"`
}

// storeTokens is a pki.TokenStore on the Devices of a store. Tokens are
// looked for in cached (an informer's view), then in devices; they are
// written to devices.
type storeTokens struct {
	devices, cached store.Resource[*v1alpha1.Device]
	now             func() time.Time
}

var _ pki.TokenStore = storeTokens{}

// tokenTimeout bounds each store call of a token operation.
const tokenTimeout = 10 * time.Second

func (s storeTokens) AddToken(hash string, rec pki.TokenRecord) error {
	return s.update(rec.Device, func(m map[string]tokenEntry) error {
		m[hash] = tokenEntry{Created: rec.Created, Expires: rec.ExpiresAt}
		return nil
	})
}

func (s storeTokens) Token(hash, device string) (pki.TokenRecord, error) {
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	// The likely device first, then every device: from the cache, then
	// from the store, as a token issued a moment ago may not be cached
	// yet.
	for _, r := range []store.Resource[*v1alpha1.Device]{s.cached, s.devices} {
		if device != "" {
			if d, err := r.Get(ctx, device); err == nil {
				if e, ok := tokensOf(d)[hash]; ok {
					return e.record(d), nil
				}
			}
		}
	}
	for _, r := range []store.Resource[*v1alpha1.Device]{s.cached, s.devices} {
		devs, err := r.List(ctx)
		if err != nil {
			return pki.TokenRecord{}, fmt.Errorf("find token: %w", err)
		}
		for _, d := range devs {
			if e, ok := tokensOf(d)[hash]; ok {
				return e.record(d), nil
			}
		}
	}
	return pki.TokenRecord{}, pki.ErrTokenUnknown
}

func (e tokenEntry) record(d *v1alpha1.Device) pki.TokenRecord {
	return pki.TokenRecord{Device: d.Name, UID: string(d.UID), Created: e.Created, ExpiresAt: e.Expires, UsedAt: e.Used}
}

func (s storeTokens) UseToken(hash, device string, now time.Time) error {
	return s.update(device, func(m map[string]tokenEntry) error {
		e, ok := m[hash]
		switch {
		case !ok:
			return pki.ErrTokenUnknown
		case !e.Used.IsZero():
			return pki.ErrTokenUsed
		case !now.Before(e.Expires):
			return pki.ErrTokenExpired
		}
		e.Used = now
		m[hash] = e
		return nil
	})
}

// update changes the tokens of device with change, on a fresh copy after
// a conflicting write, and drops the tokens past tokenKeep.
func (s storeTokens) update(device string, change func(map[string]tokenEntry) error) error {
	ctx, cancel := context.WithTimeout(context.Background(), tokenTimeout)
	defer cancel()
	for {
		d, err := s.devices.Get(ctx, device)
		if err != nil {
			return fmt.Errorf("tokens of device %s: %w", device, err)
		}
		m := tokensOf(d)
		if err := change(m); err != nil {
			return err
		}
		for h, e := range m {
			if s.now().Sub(e.Expires) > tokenKeep {
				delete(m, h)
			}
		}
		b, err := json.Marshal(m)
		if err != nil {
			return err
		}
		if d.Annotations == nil {
			d.Annotations = map[string]string{}
		}
		d.Annotations[TokensAnnotation] = string(b)
		if len(m) == 0 {
			delete(d.Annotations, TokensAnnotation)
		}
		_, err = s.devices.Update(ctx, d)
		if !errors.Is(err, store.ErrConflict) {
			if err != nil {
				return fmt.Errorf("tokens of device %s: %w", device, err)
			}
			return nil
		}
	}
}

// tokensOf reads TokensAnnotation; a value that does not parse counts as
// no tokens (the next token issued replaces it).
func tokensOf(d *v1alpha1.Device) map[string]tokenEntry {
	m := map[string]tokenEntry{}
	if v := d.Annotations[TokensAnnotation]; v != "" {
		if err := json.Unmarshal([]byte(v), &m); err != nil {
			return map[string]tokenEntry{}
		}
	}
	return m
}
