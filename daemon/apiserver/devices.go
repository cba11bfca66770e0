package apiserver

import (
	"net/http"
	"time"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
)

func (s *server) listDevices(w http.ResponseWriter, r *http.Request) error {
	page, err := listPage(r, s.d.Store.Devices(), v1alpha1.KindDevice)
	if err != nil {
		return err
	}
	devs := page.Items
	list := &v1alpha1.DeviceList{Items: make([]v1alpha1.Device, 0, len(devs))}
	list.APIVersion, list.Kind = v1alpha1.GroupVersion.String(), "DeviceList"
	list.Continue = page.Continue
	for _, d := range devs {
		list.Items = append(list.Items, *withLive(s.d.Live, d))
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *server) getDevice(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	dev, err := s.d.Store.Devices().Get(r.Context(), name)
	if err != nil {
		return storeError("device", name, err)
	}
	return writeJSON(w, http.StatusOK, stamp(withLive(s.d.Live, dev), v1alpha1.KindDevice))
}

func (s *server) createDevice(w http.ResponseWriter, r *http.Request) error {
	dev, err := s.decodeDevice(r.Body)
	if err != nil {
		return err
	}
	if err := checkCreateMeta(&dev.ObjectMeta, "device"); err != nil {
		return err
	}
	out, err := s.d.Store.Devices().Create(r.Context(), dev)
	if err != nil {
		return storeError("device", dev.Name, err)
	}
	s.log.Info("device created", "device", out.Name, "board", out.Spec.Board)
	return writeJSON(w, http.StatusCreated, stamp(out, v1alpha1.KindDevice))
}

func (s *server) updateDevice(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	dev, err := s.decodeDevice(r.Body)
	if err != nil {
		return err
	}
	if err := checkUpdateMeta(&dev.ObjectMeta, "device", name); err != nil {
		return err
	}
	out, err := s.d.Store.Devices().Update(r.Context(), dev)
	if err != nil {
		return storeError("device", name, err)
	}
	return writeJSON(w, http.StatusOK, stamp(out, v1alpha1.KindDevice))
}

func (s *server) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.d.Store.Devices().Delete(r.Context(), name); err != nil {
		return storeError("device", name, err)
	}
	s.log.Info("device deleted", "device", name)
	return writeJSON(w, http.StatusOK, deleted{Status: "deleted"})
}

func (s *server) startEmulation(w http.ResponseWriter, r *http.Request) error {
	return s.setEmulation(w, r, true)
}

func (s *server) stopEmulation(w http.ResponseWriter, r *http.Request) error {
	return s.setEmulation(w, r, false)
}

// setEmulation sets spec.emulation.enabled; starting a device that has no
// spec.emulation gives it the default backend.
func (s *server) setEmulation(w http.ResponseWriter, r *http.Request, enabled bool) error {
	name := r.PathValue("name")
	out, err := modify(r.Context(), s.d.Store.Devices(), v1alpha1.KindDevice, "device", name, func(dev *v1alpha1.Device) (bool, error) {
		e := dev.Spec.Emulation
		switch {
		case e == nil && !enabled:
			return false, nil
		case e == nil:
			dev.Spec.Emulation = &v1alpha1.Emulation{Backend: defaultBackend, Enabled: true}
			return true, s.checkDeviceSpec(&dev.Spec)
		case e.Enabled == enabled:
			return false, nil
		}
		e.Enabled = enabled
		return true, s.checkDeviceSpec(&dev.Spec)
	})
	if err != nil {
		return err
	}
	s.log.Info("device emulation set", "device", name, "enabled", enabled)
	return writeJSON(w, http.StatusOK, out)
}

// createToken issues an enrollment token for an existing device. The
// token is in the response only: never in a log or an error.
func (s *server) createToken(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	ttlSeconds, err := decodeTokenRequest(r.Body)
	if err != nil {
		return err
	}
	if s.d.Tokens == nil {
		return unavailablef("this daemon issues no enrollment tokens")
	}
	if _, err := s.d.Store.Devices().Get(r.Context(), name); err != nil {
		return storeError("device", name, err)
	}
	ttl := time.Duration(ttlSeconds) * time.Second
	token, err := s.d.Tokens.CreateToken(name, ttl)
	if err != nil {
		return err
	}
	s.log.Info("enrollment token issued", "device", name, "ttl", ttl)
	w.Header().Set("Cache-Control", "no-store")
	return writeJSON(w, http.StatusOK, api.Token{
		Device:  name,
		Token:   token,
		Expires: time.Now().Add(ttl).UTC().Truncate(time.Second),
		CA:      string(s.d.Tokens.CACertPEM()),
	})
}
