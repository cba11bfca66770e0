package loadgen

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"time"
)

// MQTT is what the fleet benchmarks hold side by side with Wasmbed's
// sessions: idle MQTT 3.1.1 sessions over mutual TLS 1.3, the choice many
// users would make instead. A client connects (CONNECT, CONNACK) and then
// only keeps its session up (PINGREQ, PINGRESP every keepalive), the
// MQTT counterpart of a device that heartbeats.
type MQTT struct {
	Broker    string      // host:port
	TLS       *tls.Config // with the client certificate and the broker's CA
	Source    net.IP      // local address to dial from; nil: any
	Keepalive time.Duration
	Stats     *Stats // Online, Sessions, Failures and Heartbeats (pings answered)
}

// MQTT control packets, MQTT 3.1.1 section 2.2.1.
const (
	mqttConnect  = 0x10
	mqttConnack  = 0x20
	mqttPingreq  = 0xc0
	mqttPingresp = 0xd0
)

// Hold keeps clientID's session up until ctx ends, connecting again after
// a jittered pause when it ends.
func (m MQTT) Hold(ctx context.Context, clientID string) {
	for ctx.Err() == nil {
		if err := m.session(ctx, clientID); err != nil && ctx.Err() == nil {
			m.Stats.Failures.Add(1)
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second + rand.N(time.Second)):
		}
	}
}

func (m MQTT) session(ctx context.Context, clientID string) error {
	nd := &net.Dialer{Timeout: dialTimeout}
	if m.Source != nil {
		nd.LocalAddr = &net.TCPAddr{IP: m.Source}
	}
	d := tls.Dialer{NetDialer: nd, Config: m.TLS}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	nc, err := d.DialContext(dctx, "tcp", m.Broker)
	cancel()
	if err != nil {
		return fmt.Errorf("dial broker %s: %w", m.Broker, err)
	}
	defer nc.Close()
	stop := context.AfterFunc(ctx, func() { nc.Close() })
	defer stop()

	if _, err := nc.Write(connectPacket(clientID, m.Keepalive)); err != nil {
		return err
	}
	r := bufio.NewReaderSize(nc, 16)
	nc.SetReadDeadline(time.Now().Add(helloTimeout))
	if t, body, err := readPacket(r); err != nil {
		return err
	} else if t != mqttConnack || len(body) != 2 || body[1] != 0 {
		return fmt.Errorf("broker refused the connection: packet %#x %x", t, body)
	}
	m.Stats.Sessions.Add(1)
	m.Stats.Online.Add(1)
	defer m.Stats.Online.Add(-1)
	next := rand.N(m.Keepalive)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(next):
		}
		next = m.Keepalive
		if _, err := nc.Write([]byte{mqttPingreq, 0}); err != nil {
			return err
		}
		nc.SetReadDeadline(time.Now().Add(m.Keepalive))
		t, _, err := readPacket(r)
		if err != nil {
			return err
		}
		if t != mqttPingresp {
			return fmt.Errorf("broker answered a ping with packet %#x", t)
		}
		m.Stats.Heartbeats.Add(1)
	}
}

// connectPacket is a CONNECT with a clean session, clientID and
// keepalive (MQTT 3.1.1 section 3.1).
func connectPacket(clientID string, keepalive time.Duration) []byte {
	ka := uint16(keepalive / time.Second)
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 4, 0x02, byte(ka >> 8), byte(ka)}
	body = append(body, byte(len(clientID)>>8), byte(len(clientID)))
	body = append(body, clientID...)
	return append(append([]byte{mqttConnect}, remainingLength(len(body))...), body...)
}

// remainingLength encodes n as MQTT's variable-length integer.
func remainingLength(n int) []byte {
	var out []byte
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			return out
		}
	}
}

// readPacket reads one packet's type and body (at most 4 KiB: the broker
// sends nothing larger to an idle client).
func readPacket(r *bufio.Reader) (byte, []byte, error) {
	t, err := r.ReadByte()
	if err != nil {
		return 0, nil, err
	}
	n, mul := 0, 1
	for i := 0; ; i++ {
		b, err := r.ReadByte()
		if err != nil {
			return 0, nil, err
		}
		n += int(b&0x7f) * mul
		if b&0x80 == 0 {
			break
		}
		if mul *= 128; i == 3 {
			return 0, nil, errors.New("malformed remaining length")
		}
	}
	if n > 4096 {
		return 0, nil, fmt.Errorf("packet of %d bytes", n)
	}
	body := make([]byte, n)
	_, err = io.ReadFull(r, body)
	return t & 0xf0, body, err
}
