package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
)

// DefaultHeartbeat is how often a gateway heartbeats its Gateway resource.
const DefaultHeartbeat = 10 * time.Second

// Gateways keeps this daemon's Gateway resource registered and its status
// fresh. (Placement, on the leader, marks silent gateways offline.)
type Gateways struct {
	Store    store.Store
	Gateway  *gateway.Gateway
	Name     string // this daemon's Gateway resource
	Endpoint string // host:port devices dial
	// APIEndpoint is the host:port of this daemon's API, for the other
	// daemons of a cluster.
	APIEndpoint string
	Interval    time.Duration // heartbeat; DefaultHeartbeat
	Logger      *slog.Logger
}

// Run registers the gateway and heartbeats until ctx ends, then marks it
// offline.
func (c *Gateways) Run(ctx context.Context) error {
	if c.Interval <= 0 {
		c.Interval = DefaultHeartbeat
	}
	log := c.Logger.With("controller", "gateways")
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		if err := c.heartbeat(ctx, true); err != nil && ctx.Err() == nil {
			log.Info("gateway heartbeat", "err", err)
		}
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return c.heartbeat(sctx, false)
		case <-t.C:
		}
	}
}

func (c *Gateways) heartbeat(ctx context.Context, online bool) error {
	res := c.Store.Gateways()
	gw, err := res.Get(ctx, c.Name)
	if errors.Is(err, store.ErrNotFound) {
		gw, err = res.Create(ctx, &v1alpha1.Gateway{
			ObjectMeta: metav1.ObjectMeta{Name: c.Name},
			Spec:       v1alpha1.GatewaySpec{Endpoint: c.Endpoint, APIEndpoint: c.APIEndpoint},
		})
	}
	if err != nil {
		return err
	}
	if gw.Spec.Endpoint != c.Endpoint || gw.Spec.APIEndpoint != c.APIEndpoint {
		gw.Spec.Endpoint, gw.Spec.APIEndpoint = c.Endpoint, c.APIEndpoint
		if gw, err = res.Update(ctx, gw); err != nil {
			return err
		}
	}
	gw.Status = v1alpha1.GatewayStatus{
		ObservedGeneration: gw.Generation,
		Online:             online,
		ConnectedDevices:   int32(len(c.Gateway.Sessions())),
		LastHeartbeat:      &metav1.Time{Time: time.Now().Truncate(time.Second)},
		Conditions:         gw.Status.Conditions,
	}
	ready := metav1.Condition{Type: "Ready", Status: metav1.ConditionTrue, Reason: "Heartbeating",
		Message: "the daemon heartbeats and serves its gateway", ObservedGeneration: gw.Generation}
	if !online {
		ready.Status, ready.Reason, ready.Message = metav1.ConditionFalse, "Stopped", "the daemon stopped"
	}
	meta.SetStatusCondition(&gw.Status.Conditions, ready)
	_, err = res.UpdateStatus(ctx, gw)
	return err
}
