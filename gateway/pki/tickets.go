package pki

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"time"
)

// Session ticket keys let a device that reconnects resume its TLS 1.3
// session (RFC 8446, section 2.2) instead of repeating the full handshake:
// no certificate is sent or parsed and no signature is made or checked,
// which is most of what a reconnect storm costs. The keys are kept in the
// authority's directory, so that tickets outlive a restart of the daemon,
// the moment a whole fleet reconnects at once.
//
// A ticket carries the device's certificate; the gateway checks it on a
// resumed session as on a full one (CheckDevice), so revocation still
// cuts a device off, and crypto/tls refuses to resume once the
// certificate has expired.
const (
	// ticketKeyRotation is how long the newest key encrypts new tickets.
	ticketKeyRotation = 24 * time.Hour
	// ticketKeyLife is how long a key is kept to decrypt tickets: crypto/tls
	// accepts a ticket for 7 days after it was issued, and a key issues
	// tickets for a day.
	ticketKeyLife = 7*24*time.Hour + ticketKeyRotation
	ticketsFile   = "tickets.json"
)

type ticketKey struct {
	Created time.Time `json:"created"`
	Key     [32]byte  `json:"key"`
}

// TicketKeys returns the keys for tls.Config.SetSessionTicketKeys, newest
// first. It makes a new key when the newest is a day old and drops keys no
// ticket can still need, persisting the change (tickets.json, mode 0600).
// A missing or unreadable file only costs the tickets issued under it, so
// it is replaced; an error means a new key could not be persisted, and the
// keys returned are still usable for this process.
func (a *Authority) TicketKeys() ([][32]byte, error) {
	a.ticketMu.Lock()
	defer a.ticketMu.Unlock()
	now := a.clock()
	if a.tickets == nil {
		if data, err := os.ReadFile(a.path(ticketsFile)); err == nil {
			_ = json.Unmarshal(data, &a.tickets)
		}
	}
	keys := slices.DeleteFunc(a.tickets, func(k ticketKey) bool {
		return now.Sub(k.Created) > ticketKeyLife || k.Created.After(now.Add(ticketKeyRotation))
	})
	slices.SortFunc(keys, func(x, y ticketKey) int { return y.Created.Compare(x.Created) })
	changed := len(keys) != len(a.tickets)
	if len(keys) == 0 || now.Sub(keys[0].Created) >= ticketKeyRotation {
		k := ticketKey{Created: now}
		if _, err := rand.Read(k.Key[:]); err != nil {
			return nil, fmt.Errorf("session ticket key: %w", err)
		}
		keys = append([]ticketKey{k}, keys...)
		changed = true
	}
	a.tickets = keys
	out := make([][32]byte, len(keys))
	for i, k := range keys {
		out[i] = k.Key
	}
	if changed {
		data, err := json.Marshal(keys)
		if err == nil {
			err = writeFileAtomic(a.path(ticketsFile), data, 0o600)
		}
		if err != nil {
			return out, fmt.Errorf("persist session ticket keys: %w", err)
		}
	}
	return out, nil
}
