package tui

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	tea "github.com/charmbracelet/bubbletea"

	"wasmbed.io/wasmbed/crds/v1alpha1"
	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
)

// callTimeout bounds every call to the daemon but the streams.
const callTimeout = 10 * time.Second

// Reconnect backoff: the first retry waits minBackoff, each failure
// doubles the wait up to maxBackoff.
const (
	minBackoff = 250 * time.Millisecond
	maxBackoff = 10 * time.Second
)

// connectedMsg says the console is connected: the event stream is open
// and the resources are listed (after the stream opened, so that no
// change falls between the two).
type connectedMsg struct {
	gen    int
	info   api.Info
	fresh  bool // another daemon than the cache knew, or the first
	stream *client.EventStream
	cancel context.CancelFunc // ends the stream

	devices  []v1alpha1.Device
	apps     []v1alpha1.Application
	gateways []v1alpha1.Gateway
}

// connectFailedMsg says a connection attempt failed.
type connectFailedMsg struct {
	gen int
	err error
}

// eventMsg is one event of the stream of connection gen.
type eventMsg struct {
	gen   int
	event api.Event
}

// badEventMsg is an event of the stream that did not decode; the stream
// goes on.
type badEventMsg struct {
	gen int
	err error
}

// streamEndedMsg says the event stream of connection gen ended.
type streamEndedMsg struct {
	gen int
	err error
}

// retryMsg asks for another connection attempt after a backoff.
type retryMsg struct{ gen int }

// infoMsg is the answer of a periodic Info refresh.
type infoMsg struct {
	info api.Info
	err  error
}

type (
	infoTickMsg struct{} // time to refresh Info
	clockMsg    struct{} // once a second, for ages
	refreshMsg  struct{} // rebuild the views from the cache
)

// actionDoneMsg is the answer to an action: what it was, and the
// application it changed (for actions on one) or the daemon's refusal.
type actionDoneMsg struct {
	what string // "pause sensor"
	app  *v1alpha1.Application
	err  error
}

// connectCmd opens the event stream and lists the resources. The stream
// resumes after lastSeq when the daemon is the one that started at
// started; otherwise it starts with every event the daemon keeps.
func connectCmd(c *client.Client, gen int, started time.Time, lastSeq uint64) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		info, err := c.Info(ctx)
		if err != nil {
			return connectFailedMsg{gen, err}
		}
		fresh := started.IsZero() || !info.Started.Equal(started)
		after := lastSeq
		if fresh {
			after = 0
		}
		// The stream outlives this call; only its opening is bounded by
		// the call's timeout.
		sctx, scancel := context.WithCancel(context.Background())
		stop := context.AfterFunc(ctx, scancel)
		stream, err := c.Events(sctx, after)
		if !stop() && err == nil {
			// The timeout fired as the stream opened: it is cancelled.
			err = fmt.Errorf("watch events: %w", context.DeadlineExceeded)
		}
		if err != nil {
			if stream != nil {
				stream.Close()
			}
			scancel()
			return connectFailedMsg{gen, err}
		}
		msg := connectedMsg{gen: gen, info: info, fresh: fresh, stream: stream, cancel: scancel}
		fail := func(err error) tea.Msg {
			stream.Close()
			scancel()
			return connectFailedMsg{gen, err}
		}
		devs, err := c.ListDevices(ctx, "")
		if err != nil {
			return fail(err)
		}
		apps, err := c.ListApplications(ctx, "")
		if err != nil {
			return fail(err)
		}
		gws, err := c.ListGateways(ctx, "")
		if err != nil {
			return fail(err)
		}
		msg.devices, msg.apps, msg.gateways = devs.Items, apps.Items, gws.Items
		return msg
	}
}

// nextEventCmd waits for one event of the stream; the handler of its
// message issues it again.
func nextEventCmd(gen int, s *client.EventStream) tea.Cmd {
	return func() tea.Msg {
		e, err := s.Next()
		if err != nil {
			var syntax *json.SyntaxError
			var typ *json.UnmarshalTypeError
			if errors.As(err, &syntax) || errors.As(err, &typ) {
				return badEventMsg{gen, err}
			}
			return streamEndedMsg{gen, err}
		}
		return eventMsg{gen, e}
	}
}

// retryCmd asks for connection attempt gen after d.
func retryCmd(gen int, d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return retryMsg{gen} })
}

// nextBackoff doubles d within [minBackoff, maxBackoff].
func nextBackoff(d time.Duration) time.Duration {
	if d < minBackoff {
		return minBackoff
	}
	return min(2*d, maxBackoff)
}

// livePoll is how often an open detail reads again what the cache does
// not hold: a device's round trips and last-seen times, which change with
// every heartbeat and are never stored, so no resource event carries
// them; an application's devices, which its status only counts.
const livePoll = 2 * time.Second

// polls numbers the detail views' live polls, so that a view opened again
// polls once.
var polls atomic.Int64

// livePollMsg asks the detail view of poll id to read again.
type livePollMsg struct{ id int }

// liveDeviceMsg is a device read for the device detail of poll id.
type liveDeviceMsg struct {
	id  int
	dev *v1alpha1.Device
}

func livePollCmd(id int) tea.Cmd {
	return tea.Tick(livePoll, func(time.Time) tea.Msg { return livePollMsg{id} })
}

// liveDeviceCmd reads device; a failed read answers with no device (the
// event stream reports why the daemon is out of reach).
func liveDeviceCmd(c *client.Client, id int, device string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		dev, err := c.GetDevice(ctx, device)
		if err != nil {
			dev = nil
		}
		return liveDeviceMsg{id, dev}
	}
}

// appDevicesMsg is the devices an application targets, each with its
// part of the rollout, read for the application detail of poll id; err
// says why they could not be read.
type appDevicesMsg struct {
	id   int
	rows []v1alpha1.DeviceRollout
	err  error
}

// appDevicesCmd reads every device app targets, a page at a time (GET
// /api/v1/applications/{name}/devices), sorted by name.
func appDevicesCmd(c *client.Client, id int, app string) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		list, err := c.ListApplicationDevices(ctx, app, "")
		if err != nil {
			return appDevicesMsg{id: id, err: err}
		}
		return appDevicesMsg{id: id, rows: list.Items}
	}
}

func infoCmd(c *client.Client) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		info, err := c.Info(ctx)
		return infoMsg{info, err}
	}
}

func infoTickCmd(d time.Duration) tea.Cmd {
	return tea.Tick(d, func(time.Time) tea.Msg { return infoTickMsg{} })
}

func clockCmd() tea.Cmd {
	return tea.Tick(time.Second, func(time.Time) tea.Msg { return clockMsg{} })
}

// appAction is one of the actions on an application.
type appAction struct {
	verb string // pause, resume, stop, start, rollback
	call func(c *client.Client, ctx context.Context, name string) (*v1alpha1.Application, error)
}

var (
	actPause    = appAction{"pause", (*client.Client).PauseApplication}
	actResume   = appAction{"resume", (*client.Client).ResumeApplication}
	actStop     = appAction{"stop", (*client.Client).StopApplication}
	actStart    = appAction{"start", (*client.Client).StartApplication}
	actRollback = appAction{"rollback", (*client.Client).RollbackApplication}
)

func appActionCmd(c *client.Client, name string, act appAction) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		app, err := act.call(c, ctx, name)
		return actionDoneMsg{what: act.verb + " " + name, app: app, err: err}
	}
}

// deleteCmd deletes an object with call and reports it as what ("delete
// device lab-3").
func deleteCmd(what string, call func(ctx context.Context) error) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		return actionDoneMsg{what: what, err: call(ctx)}
	}
}

// Messages views send the root through a Cmd.
type (
	// pushMsg opens v over the active view (enter).
	pushMsg struct{ v view }
	// jumpMsg makes the named top-level view the only one, with filter
	// set when not nil.
	jumpMsg struct {
		name   string
		filter *string
	}
	// confirmMsg asks y/n before running yes.
	confirmMsg struct {
		question string
		yes      tea.Cmd
	}
	// statusMsg shows a line in the footer until the next key.
	statusMsg struct {
		text string
		err  bool
	}
)

// send returns a Cmd that delivers msg, for views talking to the root.
func send(msg tea.Msg) tea.Cmd { return func() tea.Msg { return msg } }

// errText is how an error reads in the console: an API error by its
// message, anything else as it is.
func errText(err error) string {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Message
	}
	return err.Error()
}
