package gateway

import (
	"math/big"
	"slices"

	"wasmbed.io/wasmbed/gateway/protocol"
)

// Board is the registration of a board the platform itself starts (an
// emulated board): who may open a session under its device name. A
// session for a registered device must present exactly the registered
// certificate and board type; devices without a registration (real devices
// that enrolled) are not constrained by this.
type Board struct {
	Device       string
	Serial       *big.Int // serial of the certificate the board was given
	Board        string   // board type from the catalog
	Capabilities []string
	Backend      string // sim, docker, renode, qemu
	Endpoint     string // where the board dials the gateway from its side
}

// RegisterBoard records b before its board boots; a later registration of
// the same device replaces it.
func (g *Gateway) RegisterBoard(b Board) {
	b.Capabilities = slices.Clone(b.Capabilities)
	g.mu.Lock()
	g.boards[b.Device] = b
	g.mu.Unlock()
}

// UnregisterBoard forgets device's board registration and ends a session
// that relied on it.
func (g *Gateway) UnregisterBoard(device string) {
	g.mu.Lock()
	_, ok := g.boards[device]
	delete(g.boards, device)
	g.mu.Unlock()
	if ok {
		g.Disconnect(device, protocol.Errorf(protocol.CodeRevoked, "the board of %s was removed", device))
	}
}

// BoardOf returns device's board registration.
func (g *Gateway) BoardOf(device string) (Board, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b, ok := g.boards[device]
	return b, ok
}

// checkBoard refuses a session whose certificate or board type does not
// match the device's board registration.
func (g *Gateway) checkBoard(device string, serial *big.Int, board string) error {
	b, ok := g.BoardOf(device)
	if !ok {
		return nil
	}
	if b.Serial != nil && b.Serial.Cmp(serial) != 0 {
		return protocol.Errorf(protocol.CodeIdentityMismatch,
			"%s is a registered board and this is not its certificate (serial %x, registered %x)", device, serial, b.Serial)
	}
	if b.Board != "" && board != b.Board {
		return protocol.Errorf(protocol.CodeIdentityMismatch,
			"%s is registered as a %s board, hello says %q", device, b.Board, board)
	}
	return nil
}
