package tui

import (
	"strings"

	"wasmbed.io/wasmbed/crds/v1alpha1"
)

// termKind is what one filter term tests.
type termKind int

const (
	termText        termKind = iota // substring of a field, ignoring case
	termLabelEq                     // label=value (or label==value)
	termLabelNe                     // label!=value: absent or another value
	termLabelAbsent                 // !label
	termField                       // field:value, the whole field, ignoring case
)

type filterTerm struct {
	kind       termKind
	key, value string // value is lower-cased for termText
}

// field is one text field of a row, by the name a field term gives it.
type field struct{ name, value string }

// fieldNames are the names field terms take. Another word before a ':'
// leaves the term text ("offline:" is in an event's detail).
var fieldNames = map[string]bool{
	"name": true, "board": true, "gateway": true, "phase": true,
	"version": true, "endpoint": true, "type": true, "subject": true, "detail": true,
	"device": true, "target": true, "state": true, "reason": true,
}

// filter is what the / prompt holds: terms separated by spaces, all of
// which must match. A term with '=' tests a label (label=value,
// label!=value), "!label" tests that a label is absent, "field:value"
// is a field equal to value (gateway:gw-1, not gw-10), and any other
// term is a substring of one of the object's fields, ignoring case.
type filter struct {
	raw   string
	terms []filterTerm
}

func parseFilter(s string) filter {
	f := filter{raw: strings.TrimSpace(s)}
	for _, t := range strings.Fields(f.raw) {
		switch {
		case strings.Contains(t, "!="):
			k, v, _ := strings.Cut(t, "!=")
			f.terms = append(f.terms, filterTerm{kind: termLabelNe, key: k, value: v})
		case strings.Contains(t, "="):
			k, v, _ := strings.Cut(t, "=")
			f.terms = append(f.terms, filterTerm{kind: termLabelEq, key: k, value: strings.TrimPrefix(v, "=")})
		case len(t) > 1 && t[0] == '!':
			f.terms = append(f.terms, filterTerm{kind: termLabelAbsent, key: t[1:]})
		case isFieldTerm(t):
			k, v, _ := strings.Cut(t, ":")
			f.terms = append(f.terms, filterTerm{kind: termField, key: strings.ToLower(k), value: v})
		default:
			f.terms = append(f.terms, filterTerm{kind: termText, value: strings.ToLower(t)})
		}
	}
	return f
}

func isFieldTerm(t string) bool {
	k, _, ok := strings.Cut(t, ":")
	return ok && fieldNames[strings.ToLower(k)]
}

// fieldFilter is the filter that passes the rows whose field name is
// value, exactly: what a view opened on one object sets (the devices of
// a gateway).
func fieldFilter(name, value string) string { return name + ":" + value }

// empty reports whether the filter lets everything through.
func (f filter) empty() bool { return len(f.terms) == 0 }

// match reports whether an object with these labels and text fields
// passes every term. A field term on a field the object has not
// matches nothing.
func (f filter) match(labels map[string]string, fields ...field) bool {
	for _, t := range f.terms {
		if !t.match(labels, fields) {
			return false
		}
	}
	return true
}

func (t filterTerm) match(labels map[string]string, fields []field) bool {
	switch t.kind {
	case termLabelEq:
		v, ok := labels[t.key]
		return ok && v == t.value
	case termLabelNe:
		v, ok := labels[t.key]
		return !ok || v != t.value
	case termLabelAbsent:
		_, ok := labels[t.key]
		return !ok
	case termField:
		for _, f := range fields {
			if f.name == t.key {
				return strings.EqualFold(f.value, t.value)
			}
		}
		return false
	}
	for _, f := range fields {
		if containsFold(f.value, t.value) {
			return true
		}
	}
	return false
}

// containsFold reports whether lower (lower-case already) is in s,
// ignoring case, without allocating for ASCII s.
func containsFold(s, lower string) bool {
	if lower == "" {
		return true
	}
	for i := 0; i+len(lower) <= len(s); i++ {
		j := 0
		for ; j < len(lower); j++ {
			c := s[i+j]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != lower[j] {
				break
			}
		}
		if j == len(lower) {
			return true
		}
	}
	if !isASCII(s) {
		return strings.Contains(strings.ToLower(s), lower)
	}
	return false
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// matchDevice applies the filter to a device: its labels, and its name,
// board, gateway and phase as text. The gateway is as the table shows
// it: "-" for none.
func (f filter) matchDevice(d *v1alpha1.Device) bool {
	if f.empty() {
		return true
	}
	gw := deviceGateway(d)
	if gw == "" {
		gw = "-"
	}
	return f.match(d.Labels, field{"name", d.Name}, field{"board", d.Spec.Board},
		field{"gateway", gw}, field{"phase", string(devicePhase(d))})
}

// matchApp applies the filter to an application: its labels, and its
// name, version and phase as text.
func (f filter) matchApp(a *v1alpha1.Application) bool {
	if f.empty() {
		return true
	}
	return f.match(a.Labels, field{"name", a.Name}, field{"version", a.Spec.Version}, field{"phase", string(appPhase(a))})
}

// matchGateway applies the filter to a gateway: its labels, and its name
// and endpoint as text.
func (f filter) matchGateway(g *v1alpha1.Gateway) bool {
	if f.empty() {
		return true
	}
	return f.match(g.Labels, field{"name", g.Name}, field{"endpoint", g.Spec.Endpoint})
}

// matchRollout applies the filter to a device's part of the rollout: its
// device, the version it runs, its target version, state and reason as
// text.
func (f filter) matchRollout(r v1alpha1.DeviceRollout) bool {
	if f.empty() {
		return true
	}
	return f.match(nil, field{"device", r.Device}, field{"version", r.Version}, field{"target", r.Target},
		field{"state", r.State}, field{"reason", r.Reason})
}
