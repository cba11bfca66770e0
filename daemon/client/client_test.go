package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/apiserver"
	"wasmbed.io/wasmbed/daemon/client"
	"wasmbed.io/wasmbed/daemon/store"
)

func TestNew(t *testing.T) {
	for _, tc := range []struct {
		base string
		ok   bool
	}{
		{"http://127.0.0.1:7070", true},
		{"https://wasmbed.example.com/", true},
		{"http://host/prefix/", true},
		{"127.0.0.1:7070", false},
		{"ftp://host", false},
		{"http://", false},
		{"http://host/?q=1", false},
		{"http://user:pw@host", false},
		{"http://[::1", false},
	} {
		_, err := client.New(tc.base)
		if (err == nil) != tc.ok {
			t.Errorf("New(%q) = %v, want ok %v", tc.base, err, tc.ok)
		}
	}
	if _, err := client.New("http://h", client.WithHTTPClient(nil)); err == nil {
		t.Error("New(WithHTTPClient(nil)) = nil error")
	}
}

// TestErrorNotJSON talks to a real HTTP server that answers as a reverse
// proxy in front of a dead daemon would: a status and an HTML page.
func TestErrorNotJSON(t *testing.T) {
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusBadGateway)
		w.Write([]byte("<html><body>502 Bad Gateway: upstream wasmbedd is down</body></html>"))
	}))
	defer proxy.Close()
	c, err := client.New(proxy.URL)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDevice(context.Background(), "d1")
	var ae *api.Error
	if !errors.As(err, &ae) {
		t.Fatalf("GetDevice via a broken proxy = %v (%T), want *api.Error", err, err)
	}
	if ae.Status != http.StatusBadGateway || ae.Reason != api.ReasonUnavailable || !strings.Contains(ae.Message, "upstream wasmbedd is down") || !strings.Contains(ae.Message, "/api/v1/devices/d1") {
		t.Errorf("error = %+v, want 502 Unavailable naming the path and quoting the page", ae)
	}
	if !errors.Is(err, &api.Error{Reason: api.ReasonUnavailable}) {
		t.Errorf("errors.Is(%v, Unavailable) = false", err)
	}
}

// TestTransportError wraps a failure to reach the daemon with the
// operation; it is no *api.Error.
func TestTransportError(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close()
	c, err := client.New(url)
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.GetDevice(context.Background(), "d1")
	var ae *api.Error
	if err == nil || errors.As(err, &ae) || !strings.HasPrefix(err.Error(), "get device d1: ") {
		t.Errorf("GetDevice of a closed server = %v, want a wrapped transport error", err)
	}
}

// TestPathPrefix reaches a daemon mounted below a path, as behind a
// reverse proxy.
func TestPathPrefix(t *testing.T) {
	st, err := store.OpenEmbedded(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	h, err := apiserver.New(apiserver.Deps{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/wasmbed/", http.StripPrefix("/wasmbed", h))
	srv := httptest.NewServer(mux)
	defer srv.Close()
	c, err := client.New(srv.URL + "/wasmbed/")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Errorf("Health below /wasmbed: %v", err)
	}
	// A name with a slash stays one path segment.
	_, err = c.GetDevice(context.Background(), "a/b")
	if !errors.Is(err, &api.Error{Reason: api.ReasonNotFound}) || !strings.Contains(err.Error(), `device "a/b" not found`) {
		t.Errorf("GetDevice(a/b) = %v, want NotFound of device \"a/b\"", err)
	}
}
