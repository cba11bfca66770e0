package daemon

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the daemon's own Prometheus series; the API adds its request
// metrics to the same registry.
type metrics struct {
	events     *prometheus.CounterVec
	handshakes *prometheus.CounterVec // by "full" or "resumed"
}

// storeWrites counts the writes the daemon's store makes, by kind and
// operation (see store.Counted).
type storeWrites struct{ vec *prometheus.CounterVec }

func newStoreWrites() storeWrites {
	return storeWrites{prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmbed_store_writes_total",
		Help: "Writes to the resource store, by kind (Device, Application, Gateway) and operation (create, update, status, delete).",
	}, []string{"kind", "op"})}
}

func (w storeWrites) count(kind, op string) { w.vec.WithLabelValues(kind, op).Inc() }

func newMetrics(reg *prometheus.Registry, d *daemon, writes storeWrites, events *prometheus.CounterVec) *metrics {
	m := &metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmbed_gateway_events_total",
			Help: "Events reported by the device gateway, by type (online, offline, app, progress, telemetry, console).",
		}, []string{"type"}),
		handshakes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "wasmbed_gateway_sessions_opened_total",
			Help: "Device sessions opened, by TLS handshake: full, or resumed from a session ticket.",
		}, []string{"handshake"}),
	}
	reg.MustRegister(
		m.events,
		m.handshakes,
		writes.vec,
		events,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wasmbed_gateway_sessions",
			Help: "Live device sessions on this daemon's gateway.",
		}, func() float64 { return float64(d.gw.SessionCount()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wasmbed_gateway_accept_errors_total",
			Help: "Failed accept calls of the device gateway (out of file descriptors, for one); it retries.",
		}, func() float64 { failed, _ := d.gw.AcceptStats(); return float64(failed) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "wasmbed_gateway_connections_shed_total",
			Help: "Device connections closed at once because too many were not yet authenticated.",
		}, func() float64 { _, shed := d.gw.AcceptStats(); return float64(shed) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "wasmbed_store_quarantined_records",
			Help: "Records of the embedded store that could not be read at start and are not served; the log names them.",
		}, func() float64 {
			if d.embedded == nil {
				return 0
			}
			return float64(len(d.embedded.Quarantined()))
		}),
		&phaseCollector{d: d},
	)
	return m
}

// phaseCollector counts devices and applications by phase at scrape time,
// from the controllers' view of the store (informers' caches with
// Kubernetes: a scrape costs the API server nothing).
type phaseCollector struct{ d *daemon }

var (
	devicePhaseDesc = prometheus.NewDesc("wasmbed_devices", "Devices by phase.", []string{"phase"}, nil)
	appPhaseDesc    = prometheus.NewDesc("wasmbed_applications", "Applications (rollouts) by phase.", []string{"phase"}, nil)
)

func (c *phaseCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- devicePhaseDesc
	ch <- appPhaseDesc
}

func (c *phaseCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if devs, err := c.d.cached.Devices().List(ctx); err == nil {
		n := map[string]int{}
		for _, d := range devs {
			n[string(d.Status.Phase)]++
		}
		for phase, k := range n {
			ch <- prometheus.MustNewConstMetric(devicePhaseDesc, prometheus.GaugeValue, float64(k), phase)
		}
	}
	if apps, err := c.d.cached.Applications().List(ctx); err == nil {
		n := map[string]int{}
		for _, a := range apps {
			n[string(a.Status.Phase)]++
		}
		for phase, k := range n {
			ch <- prometheus.MustNewConstMetric(appPhaseDesc, prometheus.GaugeValue, float64(k), phase)
		}
	}
}
