package apiserver_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// latencies collects the duration of each operation of a benchmark and
// reports the median and the 99th percentile.
type latencies []time.Duration

func (l latencies) report(b *testing.B) {
	if len(l) == 0 {
		return
	}
	slices.Sort(l)
	at := func(q float64) float64 {
		return float64(l[int(q*float64(len(l)-1))].Nanoseconds()) / 1e3
	}
	b.ReportMetric(at(0.50), "p50-µs")
	b.ReportMetric(at(0.99), "p99-µs")
}

// BenchmarkGetDevice measures GET /api/v1/devices/{name} through the
// client over loopback.
func BenchmarkGetDevice(b *testing.B) {
	h := newHarness(b)
	ctx := context.Background()
	if _, err := h.c.CreateDevice(ctx, device("bench-1", "nrf52840-dk", map[string]string{"room": "lab"})); err != nil {
		b.Fatal(err)
	}
	lat := make(latencies, 0, 1024)
	b.ReportAllocs()
	for b.Loop() {
		start := time.Now()
		if _, err := h.c.GetDevice(ctx, "bench-1"); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
	}
	lat.report(b)
}

// BenchmarkListDevices measures GET /api/v1/devices of a fleet through
// the client over loopback.
func BenchmarkListDevices(b *testing.B) {
	for _, n := range []int{1000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			h := newHarness(b)
			ctx := context.Background()
			boards := []string{"nrf52840-dk", "esp32-devkitc", "mps2-an385"}
			for i := range n {
				dev := device(fmt.Sprintf("dev-%04d", i), boards[i%len(boards)], map[string]string{"room": fmt.Sprintf("room-%d", i%10)})
				if _, err := h.store.Devices().Create(ctx, dev); err != nil {
					b.Fatal(err)
				}
			}
			lat := make(latencies, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				start := time.Now()
				list, err := h.c.ListDevices(ctx, "")
				if err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(start))
				if len(list.Items) != n {
					b.Fatalf("ListDevices = %d devices, want %d", len(list.Items), n)
				}
			}
			lat.report(b)
		})
	}
}
