package tui

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/charmbracelet/x/ansi"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ellipsis marks a cell cut to its column.
const ellipsis = "…"

// fit cuts s (which may carry ANSI styling) to width display columns and
// pads it with spaces to exactly width.
func fit(s string, width int) string {
	if width <= 0 {
		return ""
	}
	w := ansi.StringWidth(s)
	if w > width {
		s = ansi.Truncate(s, width, ellipsis)
		w = ansi.StringWidth(s)
	}
	if w < width {
		s += strings.Repeat(" ", width-w)
	}
	return s
}

// fitRight is fit with the text against the right edge.
func fitRight(s string, width int) string {
	if width <= 0 {
		return ""
	}
	w := ansi.StringWidth(s)
	if w > width {
		return fit(s, width)
	}
	return strings.Repeat(" ", width-w) + s
}

// shortDuration renders d in its largest unit, rounded down: 45s, 12m, 5h,
// 3d, 2y. A negative duration (clock skew) is 0s.
func shortDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return strconv.Itoa(int(d/time.Second)) + "s"
	case d < time.Hour:
		return strconv.Itoa(int(d/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	case d < 2*365*24*time.Hour:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
	return strconv.Itoa(int(d/(365*24*time.Hour))) + "y"
}

// age is how long ago t was, as shortDuration, or "-" for no time.
func age(t *metav1.Time, now time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return shortDuration(now.Sub(t.Time))
}

// ageOf is age for a plain time.
func ageOf(t, now time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return shortDuration(now.Sub(t))
}

// rtt renders a round trip given in microseconds: 850µs, 1.2ms, 35ms,
// 1.5s; "-" for none.
func rtt(micros int64) string {
	switch {
	case micros <= 0:
		return "-"
	case micros < 1000:
		return strconv.FormatInt(micros, 10) + "µs"
	case micros < 10_000:
		return strconv.FormatFloat(float64(micros)/1000, 'f', 1, 64) + "ms"
	case micros < 1_000_000:
		return strconv.FormatInt(micros/1000, 10) + "ms"
	}
	return strconv.FormatFloat(float64(micros)/1e6, 'f', 1, 64) + "s"
}

// expiryState classifies a certificate's remaining validity.
type expiryState int

const (
	expiryNone    expiryState = iota // no certificate known
	expiryOK                         // more than a week left
	expirySoon                       // a week or less
	expiryExpired                    // past
)

// soonExpiry is how close to its expiry a certificate is shown as a
// warning.
const soonExpiry = 7 * 24 * time.Hour

// expiry renders how long a certificate remains valid ("364d"), "expired"
// once past, "-" when unknown, and classifies it.
func expiry(t *metav1.Time, now time.Time) (string, expiryState) {
	if t == nil || t.IsZero() {
		return "-", expiryNone
	}
	left := t.Sub(now)
	switch {
	case left <= 0:
		return "expired", expiryExpired
	case left <= soonExpiry:
		return shortDuration(left), expirySoon
	}
	return shortDuration(left), expiryOK
}

// byteSize renders n bytes: 512B, 1.5K, 12K, 3.4M.
func byteSize(n int64) string {
	switch {
	case n < 1024:
		return strconv.FormatInt(n, 10) + "B"
	case n < 10*1024:
		return strconv.FormatFloat(float64(n)/1024, 'f', 1, 64) + "K"
	case n < 1024*1024:
		return strconv.FormatInt(n/1024, 10) + "K"
	}
	return strconv.FormatFloat(float64(n)/(1024*1024), 'f', 1, 64) + "M"
}

// orDash is s, or "-" for an empty value, as a table's cell shows it.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// percent renders part of total, which is not 0, as a whole percentage:
// 45%.
func percent(part, total uint64) string { return strconv.FormatUint(part*100/total, 10) + "%" }

// plural renders n of a noun, the noun plural but for one: 1 device, 2
// devices, 0 devices.
func plural(n int, noun string) string {
	if n != 1 {
		noun += "s"
	}
	return strconv.Itoa(n) + " " + noun
}

// health is how a state reads at a glance; it picks the color.
type health int

const (
	healthNeutral health = iota // stopped, exited, unknown
	healthOK                    // online, running, up
	healthWarn                  // on its way: pending, transferring, rolling out
	healthBad                   // offline, failed, down
)

// healthOf classifies a phase or state of a device, an app on a device, a
// rollout or an application.
func healthOf(state string) health {
	switch strings.ToLower(state) {
	case "online", "running", "up", "ready":
		return healthOK
	case "offline", "failed", "down", "expired":
		return healthBad
	case "stopped", "exited", "paused", "":
		return healthNeutral
	}
	return healthWarn
}

// Glyphs of a rollout bar. They differ in shape, not only in color, so
// the bar reads without color too (NO_COLOR).
const (
	glyphRunning      = "█"
	glyphTransferring = "▒"
	glyphFailed       = "x"
	glyphRest         = "·"
)

// barSegments splits width cells among running, transferring and failed
// devices out of targeted, the rest being devices not there yet. Counts
// are clamped to targeted; a non-zero count gets at least one cell while
// cells remain.
func barSegments(running, transferring, failed, targeted, width int) (r, t, f int) {
	if width <= 0 || targeted <= 0 {
		return 0, 0, 0
	}
	clamp := func(v, limit int) int { return max(0, min(v, limit)) }
	running = clamp(running, targeted)
	transferring = clamp(transferring, targeted-running)
	failed = clamp(failed, targeted-running-transferring)
	cells := func(n int) int {
		if n == 0 {
			return 0
		}
		return max(1, n*width/targeted)
	}
	r, t, f = cells(running), cells(transferring), cells(failed)
	// Rounding up small counts may overflow the bar: take the excess
	// from the largest segment, which keeps its order of magnitude.
	for r+t+f > width {
		switch {
		case r >= t && r >= f:
			r--
		case t >= f:
			t--
		default:
			f--
		}
	}
	if running+transferring+failed == targeted {
		// Every device is accounted for: no empty cells.
		switch rest := width - r - t - f; {
		case rest == 0:
		case running >= transferring && running >= failed:
			r += rest
		case transferring >= failed:
			t += rest
		default:
			f += rest
		}
	}
	return r, t, f
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// labelString renders labels as k=v,k=v sorted by key; "-" for none.
func labelString(labels map[string]string) string {
	if len(labels) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(labels))
	for _, k := range sortedKeys(labels) {
		parts = append(parts, k+"="+labels[k])
	}
	return strings.Join(parts, ",")
}

// selectorString renders a label selector in the Kubernetes syntax.
func selectorString(s *metav1.LabelSelector) string {
	if s == nil {
		return ""
	}
	var parts []string
	for _, k := range sortedKeys(s.MatchLabels) {
		parts = append(parts, k+"="+s.MatchLabels[k])
	}
	for _, e := range s.MatchExpressions {
		switch e.Operator {
		case metav1.LabelSelectorOpExists:
			parts = append(parts, e.Key)
		case metav1.LabelSelectorOpDoesNotExist:
			parts = append(parts, "!"+e.Key)
		default:
			parts = append(parts, fmt.Sprintf("%s %s (%s)", e.Key, strings.ToLower(string(e.Operator)), strings.Join(e.Values, ",")))
		}
	}
	return strings.Join(parts, ",")
}

// shortSHA is the first 12 hex digits of a sha256.
func shortSHA(s string) string {
	if len(s) > 12 {
		return s[:12]
	}
	return s
}

// visibleWidth is the display width of s, styling excluded.
func visibleWidth(s string) int { return ansi.StringWidth(s) }
