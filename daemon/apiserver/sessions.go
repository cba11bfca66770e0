package apiserver

import (
	"context"
	"errors"
	"net/http"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/controller"
	"wasmbed.io/wasmbed/gateway"
	"wasmbed.io/wasmbed/gateway/pki"
)

// sessionCommand serves POST /api/v1/devices/{name}/session/{deploy,start,
// stop,remove}: an app command for a device on this daemon's gateway, sent by
// the leading daemon of a cluster. It answers 204 once the device has
// done it (a deploy: the module transferred, verified and started), 422
// DeployFailed with the device's reason, and for start, stop and remove 409
// NotConnected when the device holds no session here. A deploy is
// declarative like the gateway's: it waits for the device to connect
// until the caller gives up.
func (s *server) sessionCommand(w http.ResponseWriter, r *http.Request) error {
	name, verb := r.PathValue("name"), r.PathValue("command")
	if s.d.Sessions == nil {
		return unavailablef("this daemon reaches no device sessions")
	}
	var cmd api.SessionCommand
	if err := decodeJSON(r.Body, &cmd); err != nil {
		return err
	}
	if err := pki.ValidDeviceName(cmd.App); err != nil {
		return invalidf("app", "%v", err)
	}
	if _, err := s.d.Store.Devices().Get(r.Context(), name); err != nil {
		return storeError("device", name, err)
	}
	var err error
	switch verb {
	case "deploy":
		err = s.sessionDeploy(r.Context(), name, cmd)
	case "start":
		err = s.d.Sessions.Start(r.Context(), name, cmd.App)
	case "stop":
		err = s.d.Sessions.Stop(r.Context(), name, cmd.App)
	case "remove":
		err = s.d.Sessions.Remove(r.Context(), name, cmd.App)
	default:
		return notFoundf("no session command %q: deploy, start, stop or remove", verb)
	}
	var de *gateway.DeployError
	switch {
	case err == nil:
		w.WriteHeader(http.StatusNoContent)
		return nil
	case errors.Is(err, gateway.ErrNotConnected):
		return &api.Error{Status: http.StatusConflict, Reason: api.ReasonNotConnected, Message: err.Error()}
	case errors.As(err, &de):
		return &api.Error{Status: http.StatusUnprocessableEntity, Reason: api.ReasonDeployFailed, Message: de.Reason}
	}
	return err
}

func (s *server) sessionDeploy(ctx context.Context, device string, cmd api.SessionCommand) error {
	if cmd.Spec == nil {
		return invalidf("spec", "a deploy needs the app's spec")
	}
	if !isSHA256(cmd.Spec.Module.SHA256) {
		return invalidf("spec.module.sha256", "spec.module.sha256 %s is not 64 lowercase hex digits", quoteShort(cmd.Spec.Module.SHA256))
	}
	if err := s.checkModuleRef(ctx, &cmd.Spec.Module, "spec.module"); err != nil {
		return err
	}
	mod, err := controller.Module(ctx, s.d.Store.Modules(), cmd.App, *cmd.Spec)
	if err != nil {
		return err
	}
	return s.d.Sessions.Deploy(ctx, device, mod)
}
