package apiserver

import (
	"net/http"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

func (s *server) listGateways(w http.ResponseWriter, r *http.Request) error {
	page, err := listPage(r, s.d.Store.Gateways(), v1alpha1.KindGateway)
	if err != nil {
		return err
	}
	gws := page.Items
	list := &v1alpha1.GatewayList{Items: make([]v1alpha1.Gateway, 0, len(gws))}
	list.APIVersion, list.Kind = v1alpha1.GroupVersion.String(), "GatewayList"
	list.Continue = page.Continue
	for _, g := range gws {
		list.Items = append(list.Items, *g)
	}
	return writeJSON(w, http.StatusOK, list)
}

func (s *server) getGateway(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	gw, err := s.d.Store.Gateways().Get(r.Context(), name)
	if err != nil {
		return storeError("gateway", name, err)
	}
	return writeJSON(w, http.StatusOK, stamp(gw, v1alpha1.KindGateway))
}

func (s *server) createGateway(w http.ResponseWriter, r *http.Request) error {
	gw, err := decodeGateway(r.Body)
	if err != nil {
		return err
	}
	if err := checkCreateMeta(&gw.ObjectMeta, "gateway"); err != nil {
		return err
	}
	out, err := s.d.Store.Gateways().Create(r.Context(), gw)
	if err != nil {
		return storeError("gateway", gw.Name, err)
	}
	s.log.Info("gateway created", "gateway", out.Name)
	return writeJSON(w, http.StatusCreated, stamp(out, v1alpha1.KindGateway))
}

func (s *server) updateGateway(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	gw, err := decodeGateway(r.Body)
	if err != nil {
		return err
	}
	if err := checkUpdateMeta(&gw.ObjectMeta, "gateway", name); err != nil {
		return err
	}
	out, err := s.d.Store.Gateways().Update(r.Context(), gw)
	if err != nil {
		return storeError("gateway", name, err)
	}
	return writeJSON(w, http.StatusOK, stamp(out, v1alpha1.KindGateway))
}

func (s *server) deleteGateway(w http.ResponseWriter, r *http.Request) error {
	name := r.PathValue("name")
	if err := s.d.Store.Gateways().Delete(r.Context(), name); err != nil {
		return storeError("gateway", name, err)
	}
	s.log.Info("gateway deleted", "gateway", name)
	return writeJSON(w, http.StatusOK, deleted{Status: "deleted"})
}
