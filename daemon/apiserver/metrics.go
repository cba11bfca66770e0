package apiserver

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the API's request metrics. The route label is the route's
// path pattern (or "unmatched"), never the raw path, so its values are a
// closed set.
type metrics struct {
	duration *prometheus.HistogramVec
	requests *prometheus.CounterVec
}

var requestLabels = []string{"route", "method", "code"}

// newMetrics registers the API's metrics with reg. When a handler built
// earlier registered them already, the registered ones are shared.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	duration := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "wasmbed_api_request_duration_seconds",
		Help:    "Time to serve an API request, seconds; streams count until they end.",
		Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, requestLabels)
	requests := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmbed_api_requests_total",
		Help: "API requests served.",
	}, requestLabels)
	var err error
	if duration, err = register(reg, duration); err != nil {
		return nil, err
	}
	if requests, err = register(reg, requests); err != nil {
		return nil, err
	}
	return &metrics{duration: duration, requests: requests}, nil
}

func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	if err != nil {
		return c, fmt.Errorf("register metrics: %w", err)
	}
	return c, nil
}

func (m *metrics) observe(route, method string, code int, d time.Duration) {
	switch method {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS":
	default:
		method = "other" // keep the label's values a closed set
	}
	c := strconv.Itoa(code)
	m.duration.WithLabelValues(route, method, c).Observe(d.Seconds())
	m.requests.WithLabelValues(route, method, c).Inc()
}
