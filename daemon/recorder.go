package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/rand"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/client-go/tools/reference"
	"k8s.io/utils/clock"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/events"
)

// Event outcomes, the result label of wasmbed_events_total.
const (
	eventWritten    = "written"    // a new Event
	eventAggregated = "aggregated" // counted on an Event written before
	eventFiltered   = "filtered"   // over the per-object rate the correlator allows
	eventDropped    = "dropped"    // the queue was full, or the API server refused it
)

// eventQueue is how many Events may wait to be written: a failover of a
// whole gateway's devices records three each.
const eventQueue = 16384

// kubeRecorder records Events on the daemon's resources through the
// Kubernetes Events API. Repeats of an event on one object become one
// Event with a count, and similar ones are combined (client-go's event
// correlator, as kubelet and the controller manager use it). Events are
// written from a queue of their own by a client with its own rate limit,
// so that a burst (a gateway's devices failing over) neither waits on nor
// slows the controllers' requests; every event is counted by outcome in
// wasmbed_events_total, so that none vanishes unseen.
type kubeRecorder struct {
	scheme  *runtime.Scheme
	source  corev1.EventSource
	ns      string
	sink    record.EventSink
	corr    *record.EventCorrelator
	queue   chan *corev1.Event
	counts  *prometheus.CounterVec
	log     *slog.Logger
	backoff time.Duration // before writing again after a failure; a second by default
	// skip names the reasons not recorded: those the sink carries
	// otherwise.
	skip map[string]bool
}

func newEventCounts() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "wasmbed_events_total",
		Help: "Kubernetes Events recorded on the daemon's resources, by outcome (written, aggregated, filtered, dropped).",
	}, []string{"result"})
}

// newKubeRecorder records Events in namespace ns as the given host, with a
// client of kube's configuration at 50 requests a second (burst 200).
func newKubeRecorder(kube *rest.Config, ns, host string, counts *prometheus.CounterVec, log *slog.Logger) (*kubeRecorder, error) {
	cfg := rest.CopyConfig(kube)
	cfg.QPS, cfg.Burst = 50, 200
	cs, err := typedcorev1.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	return newRecorder(&typedcorev1.EventSinkImpl{Interface: cs.Events(ns)}, ns, host, counts, log)
}

// newBusRecorder records the same Events, correlated and counted the same
// way, on the daemon's event stream: what the embedded store has instead
// of Kubernetes Events.
func newBusRecorder(bus *events.Bus, host string, counts *prometheus.CounterVec, log *slog.Logger) (*kubeRecorder, error) {
	r, err := newRecorder(busSink{bus}, "", host, counts, log)
	if err != nil {
		return nil, err
	}
	// The stream has online and offline events of its own.
	r.skip = map[string]bool{"Online": true, "Offline": true}
	return r, nil
}

func newRecorder(sink record.EventSink, ns, host string, counts *prometheus.CounterVec, log *slog.Logger) (*kubeRecorder, error) {
	scheme := runtime.NewScheme()
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	for _, r := range []string{eventWritten, eventAggregated, eventFiltered, eventDropped} {
		counts.WithLabelValues(r) // every outcome is a series from the start
	}
	return &kubeRecorder{
		scheme: scheme, source: corev1.EventSource{Component: "wasmbedd", Host: host}, ns: ns,
		sink:  sink,
		corr:  record.NewEventCorrelator(clock.RealClock{}),
		queue: make(chan *corev1.Event, eventQueue), counts: counts, log: log, backoff: time.Second,
	}, nil
}

// Eventf queues an Event on obj; it never blocks.
func (r *kubeRecorder) Eventf(obj runtime.Object, eventtype, reason, messageFmt string, args ...any) {
	if r.skip[reason] {
		return
	}
	ref, err := reference.GetReference(r.scheme, obj)
	if err != nil {
		r.drop("no reference to the object", err, reason)
		return
	}
	if ref.Namespace == "" {
		ref.Namespace = r.ns
	}
	now := metav1.Now()
	ev := &corev1.Event{
		ObjectMeta: metav1.ObjectMeta{
			Name:      fmt.Sprintf("%s.%x%s", ref.Name, now.UnixNano(), rand.String(4)),
			Namespace: ref.Namespace,
		},
		InvolvedObject: *ref, Reason: reason, Message: fmt.Sprintf(messageFmt, args...),
		FirstTimestamp: now, LastTimestamp: now, Count: 1, Type: eventtype, Source: r.source,
	}
	select {
	case r.queue <- ev:
	default:
		r.drop("the event queue is full", nil, reason)
	}
}

func (r *kubeRecorder) drop(why string, err error, reason string) {
	r.counts.WithLabelValues(eventDropped).Inc()
	r.log.Warn("event dropped: "+why, "reason", reason, "err", err)
}

// run writes queued Events until ctx ends.
func (r *kubeRecorder) run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev := <-r.queue:
			r.write(ctx, ev)
		}
	}
}

// write correlates ev with the Events written before and creates it, or
// patches the count of the one it repeats. A refusal is final; a failure
// to reach the server is tried again, three times in all.
func (r *kubeRecorder) write(ctx context.Context, ev *corev1.Event) {
	res, err := r.corr.EventCorrelate(ev)
	if err != nil {
		r.drop("cannot correlate it", err, ev.Reason)
		return
	}
	if res.Skip {
		r.counts.WithLabelValues(eventFiltered).Inc()
		return
	}
	for attempt := range 3 {
		if attempt > 0 {
			select {
			case <-ctx.Done():
				r.drop("the daemon is stopping", ctx.Err(), ev.Reason)
				return
			case <-time.After(r.backoff):
			}
		}
		var out *corev1.Event
		repeat := res.Event.Count > 1
		if repeat {
			out, err = r.sink.Patch(res.Event, res.Patch)
		}
		if !repeat || apierrors.IsNotFound(err) {
			created := res.Event.DeepCopy()
			created.ResourceVersion = ""
			out, err = r.sink.Create(created)
		}
		if err == nil {
			r.corr.UpdateState(out)
			if repeat {
				r.counts.WithLabelValues(eventAggregated).Inc()
			} else {
				r.counts.WithLabelValues(eventWritten).Inc()
			}
			return
		}
		if _, refused := errors.AsType[*apierrors.StatusError](err); refused {
			break
		}
	}
	r.drop("the API server did not take it", err, ev.Reason)
}

// busSink is a record.EventSink onto the daemon's event stream: each Event,
// new or counted again, is published as a log event.
type busSink struct{ bus *events.Bus }

func (s busSink) Create(e *corev1.Event) (*corev1.Event, error) { return s.publish(e), nil }
func (s busSink) Update(e *corev1.Event) (*corev1.Event, error) { return s.publish(e), nil }
func (s busSink) Patch(e *corev1.Event, _ []byte) (*corev1.Event, error) {
	return s.publish(e), nil
}

func (s busSink) publish(e *corev1.Event) *corev1.Event {
	ev := api.Event{Time: e.LastTimestamp.Time, Type: api.EventLog, Kind: e.InvolvedObject.Kind, Name: e.InvolvedObject.Name,
		Reason: e.Reason, Message: e.Message, Level: e.Type, Count: e.Count}
	if ev.Kind == v1alpha1.KindDevice {
		ev.Device = ev.Name
	}
	s.bus.Publish(ev)
	out := e.DeepCopy()
	out.ResourceVersion = "1" // as stored: the correlator patches it next time
	return out
}
