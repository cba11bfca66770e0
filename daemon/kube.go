package daemon

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"

	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/daemon/store"
)

// Store backends a daemon can run on.
const (
	StoreEmbedded   = "embedded"
	StoreKubernetes = "kubernetes"
)

// LeaseName is the Lease the daemons of one namespace elect their leader
// with.
const LeaseName = "wasmbedd-leader"

// LeaseTimes tunes leader election. Zero values take client-go's usual
// 15s lease, 10s renew deadline and 2s retry period; with only Duration
// given, the other two keep those proportions to it.
type LeaseTimes struct {
	Duration, RenewDeadline, RetryPeriod time.Duration
}

func (l LeaseTimes) orDefaults() LeaseTimes {
	if l.Duration <= 0 {
		l.Duration = 15 * time.Second
	}
	if l.RenewDeadline <= 0 {
		l.RenewDeadline = l.Duration * 2 / 3
	}
	if l.RetryPeriod <= 0 {
		l.RetryPeriod = l.Duration * 2 / 15
	}
	return l
}

// openStore opens the store cfg asks for, with the recorder of events on
// resources that goes with it (nil for the embedded store), counting
// what becomes of each event in events.
func openStore(cfg Config, events *prometheus.CounterVec) (store.Store, controller.Recorder, func(), error) {
	switch cfg.Store {
	case "", StoreEmbedded:
		st, err := store.OpenEmbedded(filepath.Join(cfg.DataDir, "store"))
		if err != nil {
			return nil, nil, nil, err
		}
		return st, nil, func() { st.Close() }, nil
	case StoreKubernetes:
		if cfg.Kube == nil {
			return nil, nil, nil, fmt.Errorf("the Kubernetes store needs a cluster configuration")
		}
		st, err := store.OpenKubernetes(cfg.Kube, cfg.Namespace, store.KubeOptions{})
		if err != nil {
			return nil, nil, nil, err
		}
		rec, err := newKubeRecorder(cfg.Kube, cfg.Namespace, cfg.GatewayName, events, cfg.Logger)
		if err != nil {
			st.Close()
			return nil, nil, nil, err
		}
		ctx, stop := context.WithCancel(context.Background())
		go rec.run(ctx)
		return st, rec, func() { stop(); st.Close() }, nil
	default:
		return nil, nil, nil, fmt.Errorf("unknown store %q: %s or %s", cfg.Store, StoreEmbedded, StoreKubernetes)
	}
}

// leadership runs work while this daemon leads. With the embedded store a
// daemon is alone and always leads; with the Kubernetes store the daemons
// of a namespace elect one leader through the LeaseName Lease, and work
// runs on the leader only, stopped when it loses the lease and started
// again when it wins it back.
type leadership struct {
	leader  atomic.Pointer[string] // identity of the current leader as last observed; nil or "" when unknown
	leading atomic.Bool            // this daemon's leader work runs
	self    string
}

// Leading reports whether this daemon's leader work runs: true from just
// before a term's work starts until it has returned.
func (l *leadership) Leading() bool { return l.leading.Load() }

// Leader returns the identity of the leader as last observed, "" when
// unknown.
func (l *leadership) Leader() string {
	if id := l.leader.Load(); id != nil {
		return *id
	}
	return ""
}

func (l *leadership) set(leader string) { l.leader.Store(&leader) }

// run runs work until ctx ends, while this daemon leads.
func (l *leadership) run(ctx context.Context, cfg Config, log *slog.Logger, work func(context.Context) error) error {
	if cfg.Store != StoreKubernetes {
		l.set(l.self)
		l.leading.Store(true)
		defer l.leading.Store(false)
		return work(ctx)
	}
	cs, err := coordinationv1.NewForConfig(cfg.Kube)
	if err != nil {
		return err
	}
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metav1.ObjectMeta{Name: LeaseName, Namespace: cfg.Namespace},
		Client:     cs,
		LockConfig: resourcelock.ResourceLockConfig{Identity: l.self},
	}
	times := cfg.Lease.orDefaults()
	// The elector calls OnStartedLeading in a goroutine of its own and
	// does not wait for it; work runs here instead, one term at a time,
	// so a term never overlaps the end of the one before.
	terms := make(chan context.Context)
	le, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   times.Duration,
		RenewDeadline:   times.RenewDeadline,
		RetryPeriod:     times.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            LeaseName,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(term context.Context) {
				select {
				case terms <- term:
				case <-term.Done():
				}
			},
			OnStoppedLeading: func() {},
			OnNewLeader:      func(id string) { l.set(id) },
		},
	})
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	electing := make(chan struct{})
	go func() {
		defer close(electing)
		for ctx.Err() == nil {
			le.Run(ctx) // returns when the lease is lost or ctx ends
			if l.Leader() == l.self {
				l.set("")
			}
		}
	}()
	defer func() {
		cancel()
		<-electing
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case term := <-terms:
			log.Info("leading", "lease", LeaseName)
			l.leading.Store(true)
			err := work(term)
			l.leading.Store(false)
			if err != nil && term.Err() == nil {
				return err
			}
			log.Info("no longer leading", "lease", LeaseName)
		}
	}
}
