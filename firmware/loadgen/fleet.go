package loadgen

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// Name is the name of simulated device i of a fleet with prefix.
func Name(prefix string, i int) string { return fmt.Sprintf("%s-%05d", prefix, i) }

// IdentityFile is where a fleet directory keeps device's certificate and
// key, one PEM file; CAFile holds the gateway's CA.
func IdentityFile(dir, device string) string { return filepath.Join(dir, device+".pem") }

// CAFile is the gateway's CA in a fleet directory.
func CAFile(dir string) string { return filepath.Join(dir, "ca.pem") }

// SaveIdentity writes device's certificate and key into dir.
func SaveIdentity(dir, device string, certPEM, keyPEM []byte) error {
	return os.WriteFile(IdentityFile(dir, device), append(append([]byte{}, certPEM...), keyPEM...), 0o600)
}

// LoadDevice reads device's identity from dir.
func LoadDevice(dir, device string) (*Device, error) {
	b, err := os.ReadFile(IdentityFile(dir, device))
	if err != nil {
		return nil, err
	}
	return NewDevice(device, b, b)
}

// SourceFor spreads connections over loopback source addresses: the
// i-th connection dials from 127.0.0.(2 + i/perAddress), so that no
// address runs out of ephemeral ports (28,000 or so each). perAddress
// <= 0 dials from the system's choice.
func SourceFor(i, perAddress int) net.IP {
	if perAddress <= 0 {
		return nil
	}
	return net.IPv4(127, 0, 0, byte(2+i/perAddress))
}

// Hold runs devices until ctx ends, each dialling from the source
// address source(i) gives it. Once every device has stopped, it returns
// the first refusal for good and how many devices were refused.
func Hold(ctx context.Context, cfg Config, devices []*Device, source func(i int) net.IP) (refused int, err error) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
	)
	for i, d := range devices {
		c := cfg
		c.Source = source(i)
		wg.Go(func() {
			if err := d.Run(ctx, c); err != nil {
				mu.Lock()
				refused++
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	return refused, first
}
