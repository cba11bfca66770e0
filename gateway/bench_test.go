package gateway_test

import (
	"crypto/tls"
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/protocol"
)

// benchPeer is a bare device session: a TLS connection that has said hello.
type benchPeer struct {
	tc *tls.Conn
	fr *protocol.FrameReader
	id uint64
}

func (p *benchPeer) roundTrip(t protocol.Type, body any) (*protocol.Message, error) {
	p.id++
	b, err := protocol.Encode(&protocol.Message{Type: t, ID: p.id, Body: body})
	if err != nil {
		return nil, err
	}
	if err := protocol.WriteFrame(p.tc, b); err != nil {
		return nil, err
	}
	for {
		f, err := p.fr.Next()
		if err != nil {
			return nil, err
		}
		m, err := protocol.Decode(f)
		if err != nil {
			return nil, err
		}
		if m.Re == p.id {
			return m, nil
		}
	}
}

// connect performs the handshake and hello of one device.
func (tb *testbed) connect(cert *tls.Certificate, name string) (*benchPeer, error) {
	return tb.connectWith(cert, name, nil)
}

// connectWith is connect resuming a TLS session from tickets when it
// holds one.
func (tb *testbed) connectWith(cert *tls.Certificate, name string, tickets tls.ClientSessionCache) (*benchPeer, error) {
	tc, err := tls.Dial("tcp", tb.addr, &tls.Config{RootCAs: tb.ca.Pool(), ServerName: "127.0.0.1",
		MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{*cert}, ClientSessionCache: tickets})
	if err != nil {
		return nil, err
	}
	p := &benchPeer{tc: tc, fr: protocol.NewFrameReader(tc, 0)}
	r, err := p.roundTrip(protocol.TypeHello, &protocol.Hello{Device: name, MinVersion: 1, MaxVersion: 1})
	if err != nil {
		tc.Close()
		return nil, err
	}
	if r.Type != protocol.TypeWelcome {
		tc.Close()
		return nil, fmt.Errorf("hello answered with %s: %v", r.Type, r.Body)
	}
	return p, nil
}

func benchTestbed(b *testing.B) *testbed {
	return newTestbed(b, func(c *gateway.Config) {
		c.HeartbeatInterval = time.Minute
		c.HeartbeatTimeout = 10 * time.Minute
	})
}

// BenchmarkHandshake measures device connections: TCP connect, TLS 1.3
// with mutual authentication, hello and welcome. "full" is a first
// connection; "resumed" a reconnect with the session ticket of an earlier
// one, which skips the certificates and signatures.
func BenchmarkHandshake(b *testing.B) {
	for _, resume := range []bool{false, true} {
		b.Run(map[bool]string{false: "full", true: "resumed"}[resume], func(b *testing.B) {
			tb := benchTestbed(b)
			const names = 64
			certs := make([]*tls.Certificate, names)
			tickets := make([]tls.ClientSessionCache, names)
			for i := range certs {
				name := fmt.Sprintf("dev-%d", i)
				certs[i] = certFrom(tb.t, tb.ca, name)
				if resume {
					tickets[i] = tls.NewLRUClientSessionCache(1)
					p, err := tb.connectWith(certs[i], name, tickets[i])
					if err != nil {
						b.Fatal(err)
					}
					p.tc.Close()
				}
			}
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)) % names
					p, err := tb.connectWith(certs[i], fmt.Sprintf("dev-%d", i), tickets[i])
					if err != nil {
						b.Error(err)
						return
					}
					if resume && !p.tc.ConnectionState().DidResume {
						b.Error("session not resumed")
					}
					p.tc.Close()
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "handshakes/s")
		})
	}
}

// BenchmarkHeartbeat measures heartbeat round trips over 64 live sessions.
func BenchmarkHeartbeat(b *testing.B) {
	tb := benchTestbed(b)
	const sessions = 64
	peers := make(chan *benchPeer, sessions)
	for i := 0; i < sessions; i++ {
		name := fmt.Sprintf("dev-%d", i)
		p, err := tb.connect(certFrom(tb.t, tb.ca, name), name)
		if err != nil {
			b.Fatal(err)
		}
		defer p.tc.Close()
		peers <- p
	}
	b.SetParallelism(sessions / runtime.GOMAXPROCS(0))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		p := <-peers
		defer func() { peers <- p }()
		var seq uint64
		for pb.Next() {
			seq++
			if _, err := p.roundTrip(protocol.TypeHeartbeat, &protocol.Heartbeat{Seq: seq, RTTMicro: 100}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "heartbeats/s")
}

// BenchmarkIdleSessions opens b.N idle sessions and reports the memory one
// costs. Both ends live in this process: the device end is a bare
// *tls.Conn with a frame reader, so the figure is an upper bound for the
// gateway's side. Run with -benchtime=1000x.
func BenchmarkIdleSessions(b *testing.B) {
	tb := benchTestbed(b)
	certs := make([]*tls.Certificate, b.N)
	for i := range certs {
		certs[i] = certFrom(tb.t, tb.ca, fmt.Sprintf("dev-%d", i))
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	b.ResetTimer()
	peers := make([]*benchPeer, 0, b.N)
	for i := 0; i < b.N; i++ {
		p, err := tb.connect(certs[i], fmt.Sprintf("dev-%d", i))
		if err != nil {
			b.Fatal(err)
		}
		peers = append(peers, p)
	}
	b.StopTimer()
	waitUntilB(b, func() bool { return len(tb.gw.Sessions()) == b.N })
	runtime.GC()
	runtime.ReadMemStats(&after)
	used := float64(after.HeapInuse+after.StackInuse) - float64(before.HeapInuse+before.StackInuse)
	b.ReportMetric(used/float64(b.N), "B/session")
	b.ReportMetric(float64(runtime.NumGoroutine()-g0)/float64(b.N), "goroutines/session")
	for _, p := range peers {
		p.tc.Close()
	}
}

func waitUntilB(b *testing.B, cond func() bool) {
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			b.Fatal("condition never held")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
