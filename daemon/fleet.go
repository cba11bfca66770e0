package daemon

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/store"
	"wasmbed.io/wasmbed/gateway"
)

// fleet reaches every device's session for the rollout controller: on
// this daemon's gateway directly, on the gateway of another daemon of the
// cluster through that daemon's API (the Gateway resource's apiEndpoint,
// with the API token the daemons share).
type fleet struct {
	self  string
	gw    *gateway.Gateway
	store store.Store
	token string

	mu      sync.Mutex
	clients map[string]*client.Client // by API endpoint
}

// peer returns the client of the daemon whose gateway device is placed
// on, or nil when that is this daemon's (or the device is connected
// here, or placed nowhere yet).
func (f *fleet) peer(ctx context.Context, device string) (*client.Client, error) {
	if _, here := f.gw.Session(device); here {
		return nil, nil
	}
	dev, err := f.store.Devices().Get(ctx, device)
	if err != nil {
		return nil, err
	}
	name := dev.Status.Gateway
	if name == "" || name == f.self {
		return nil, nil
	}
	gw, err := f.store.Gateways().Get(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("gateway %s of device %s: %w", name, device, err)
	}
	ep := gw.Spec.APIEndpoint
	if ep == "" {
		return nil, fmt.Errorf("gateway %s of device %s has no API endpoint: %w", name, device, gateway.ErrNotConnected)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if c := f.clients[ep]; c != nil {
		return c, nil
	}
	c, err := client.New("http://"+ep, client.WithToken(f.token))
	if err != nil {
		return nil, err
	}
	if f.clients == nil {
		f.clients = map[string]*client.Client{}
	}
	f.clients[ep] = c
	return c, nil
}

func (f *fleet) Deploy(ctx context.Context, device string, mod gateway.Module) error {
	c, err := f.peer(ctx, device)
	if err != nil {
		return err
	}
	if c == nil {
		return f.gw.Deploy(ctx, device, mod)
	}
	spec := v1alpha1.ApplicationSpec{
		Version: mod.Version,
		Module:  v1alpha1.ModuleRef{SHA256: hex.EncodeToString(mod.SHA256), Size: int64(len(mod.Data))},
		Limits: v1alpha1.Limits{MemoryPages: int32(mod.Limits.MemoryPages),
			CallTimeoutMillis: int32(mod.Limits.CallMS), PeriodMillis: int32(mod.Limits.PeriodMS)},
	}
	return remoteError(device, mod.App, mod.Version, c.SessionCommand(ctx, device, "deploy", api.SessionCommand{App: mod.App, Spec: &spec}))
}

func (f *fleet) Start(ctx context.Context, device, app string) error {
	return f.command(ctx, device, app, "start", f.gw.Start)
}

func (f *fleet) Stop(ctx context.Context, device, app string) error {
	return f.command(ctx, device, app, "stop", f.gw.Stop)
}

func (f *fleet) Remove(ctx context.Context, device, app string) error {
	return f.command(ctx, device, app, "remove", f.gw.Remove)
}

func (f *fleet) command(ctx context.Context, device, app, verb string, local func(context.Context, string, string) error) error {
	c, err := f.peer(ctx, device)
	if err != nil {
		return err
	}
	if c == nil {
		return local(ctx, device, app)
	}
	return remoteError(device, app, "", c.SessionCommand(ctx, device, verb, api.SessionCommand{App: app}))
}

// remoteError turns a peer's answer into the gateway's errors, so that the
// rollout controller treats a device on another gateway like one here.
func remoteError(device, app, version string, err error) error {
	var ae *api.Error
	switch {
	case err == nil:
		return nil
	case !errors.As(err, &ae):
		return err
	case ae.Reason == api.ReasonNotConnected:
		return fmt.Errorf("%s: %w", ae.Message, gateway.ErrNotConnected)
	case ae.Reason == api.ReasonDeployFailed:
		return &gateway.DeployError{Device: device, App: app, Version: version, Reason: ae.Message}
	}
	return err
}
