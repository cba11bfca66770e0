package controller

import (
	"context"
	"errors"
	"log/slog"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
)

// Gateways keeps this daemon's Gateway resource registered and its status
// fresh, and marks gateways whose heartbeat stopped as offline.
type Gateways struct {
	Store    store.Store
	Gateway  *gateway.Gateway
	Name     string        // this daemon's Gateway resource
	Endpoint string        // host:port devices dial
	Interval time.Duration // heartbeat; default 10s; a gateway silent for 3 intervals is offline
	Logger   *slog.Logger
}

// Run registers the gateway and heartbeats until ctx ends, then marks it
// offline.
func (c *Gateways) Run(ctx context.Context) error {
	if c.Interval <= 0 {
		c.Interval = 10 * time.Second
	}
	log := c.Logger.With("controller", "gateways")
	t := time.NewTicker(c.Interval)
	defer t.Stop()
	for {
		if err := c.heartbeat(ctx, true); err != nil && ctx.Err() == nil {
			log.Info("gateway heartbeat", "err", err)
		}
		if err := c.expire(ctx); err != nil && ctx.Err() == nil {
			log.Info("gateway expiry", "err", err)
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
			Spec:       v1alpha1.GatewaySpec{Endpoint: c.Endpoint},
		})
	}
	if err != nil {
		return err
	}
	if gw.Spec.Endpoint != c.Endpoint {
		gw.Spec.Endpoint = c.Endpoint
		if gw, err = res.Update(ctx, gw); err != nil {
			return err
		}
	}
	gw.Status = v1alpha1.GatewayStatus{
		ObservedGeneration: gw.Generation,
		Online:             online,
		ConnectedDevices:   int32(len(c.Gateway.Sessions())),
		LastHeartbeat:      &metav1.Time{Time: time.Now().Truncate(time.Second)},
	}
	_, err = res.UpdateStatus(ctx, gw)
	return err
}

// expire marks other gateways offline when their heartbeat is older than
// three intervals.
func (c *Gateways) expire(ctx context.Context) error {
	gws, err := c.Store.Gateways().List(ctx)
	if err != nil {
		return err
	}
	for _, gw := range gws {
		if gw.Name == c.Name || !gw.Status.Online {
			continue
		}
		if gw.Status.LastHeartbeat == nil || time.Since(gw.Status.LastHeartbeat.Time) > 3*c.Interval {
			gw.Status.Online = false
			if _, err := c.Store.Gateways().UpdateStatus(ctx, gw); err != nil && !errors.Is(err, store.ErrConflict) {
				return err
			}
		}
	}
	return nil
}
