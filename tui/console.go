package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/viewport"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
)

// Console limits.
const (
	maxScrollback  = 5000    // lines kept
	consoleReadBuf = 4096    // bytes read at a time
	maxConsoleSend = 4 << 10 // bytes typed per request, the daemon's limit
	boardOffRetry  = time.Second
)

// Messages of a console session; id tells sessions apart, so that what a
// detached or replaced session still delivers is dropped.
type (
	consoleOpenedMsg struct {
		id     int
		rc     io.ReadCloser
		cancel context.CancelFunc
	}
	consoleFailedMsg struct {
		id  int
		err error
	}
	consoleDataMsg struct {
		id   int
		data []byte
	}
	consoleEndedMsg struct {
		id  int
		err error
	}
	consoleSentMsg struct {
		id  int
		err error
	}
	consoleRetryMsg struct{ id int }
	// popMsg leaves the active view (the console's detach key).
	popMsg struct{}
)

// consoleMsg is any message of a console session.
type consoleMsg interface{ session() int }

func (m consoleOpenedMsg) session() int { return m.id }
func (m consoleFailedMsg) session() int { return m.id }
func (m consoleDataMsg) session() int   { return m.id }
func (m consoleEndedMsg) session() int  { return m.id }
func (m consoleSentMsg) session() int   { return m.id }
func (m consoleRetryMsg) session() int  { return m.id }

// attachConsoleCmd opens the console stream of device for session id.
// The stream outlives the Cmd; only its opening is bounded.
func attachConsoleCmd(c *client.Client, id int, device string) tea.Cmd {
	return func() tea.Msg {
		tctx, tcancel := context.WithTimeout(context.Background(), callTimeout)
		defer tcancel()
		ctx, cancel := context.WithCancel(context.Background())
		stop := context.AfterFunc(tctx, cancel)
		rc, err := c.Console(ctx, device)
		if !stop() && err == nil {
			// The timeout fired as the stream opened: it is cancelled.
			err = fmt.Errorf("attach console of %s: %w", device, context.DeadlineExceeded)
		}
		if err != nil {
			if rc != nil {
				rc.Close()
			}
			cancel()
			return consoleFailedMsg{id, err}
		}
		return consoleOpenedMsg{id, rc, cancel}
	}
}

// readConsoleCmd reads what the board printed next; the handler issues
// it again.
func readConsoleCmd(id int, rc io.Reader) tea.Cmd {
	return func() tea.Msg {
		buf := make([]byte, consoleReadBuf)
		n, err := rc.Read(buf)
		if n > 0 {
			return consoleDataMsg{id, buf[:n]}
		}
		if err == nil {
			err = io.ErrNoProgress
		}
		return consoleEndedMsg{id, err}
	}
}

func sendConsoleCmd(c *client.Client, id int, device string, data []byte) tea.Cmd {
	return func() tea.Msg {
		ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
		defer cancel()
		return consoleSentMsg{id, c.SendConsole(ctx, device, data)}
	}
}

// keyBytes is what a terminal sends the board for a key: runes as UTF-8,
// enter as CR, control keys as their control bytes, arrows and the like
// as VT100 sequences.
func keyBytes(k tea.KeyMsg) []byte {
	var b []byte
	if k.Alt {
		b = append(b, 0x1b)
	}
	switch k.Type {
	case tea.KeyRunes:
		return append(b, string(k.Runes)...)
	case tea.KeySpace:
		return append(b, ' ')
	case tea.KeyUp:
		return append(b, "\x1b[A"...)
	case tea.KeyDown:
		return append(b, "\x1b[B"...)
	case tea.KeyRight:
		return append(b, "\x1b[C"...)
	case tea.KeyLeft:
		return append(b, "\x1b[D"...)
	case tea.KeyHome:
		return append(b, "\x1b[H"...)
	case tea.KeyEnd:
		return append(b, "\x1b[F"...)
	case tea.KeyDelete:
		return append(b, "\x1b[3~"...)
	}
	if (k.Type >= 0 && k.Type < 0x20) || k.Type == 0x7f {
		return append(b, byte(k.Type))
	}
	return nil
}

// scrollback is a console's text: finished lines and the one being
// printed. It interprets what a serial terminal would: CR LF ends a
// line, backspace erases, tabs stop every 8 columns; escape sequences and
// other control bytes are dropped.
type scrollback struct {
	lines   []string
	cur     []rune
	partial []byte // an incomplete UTF-8 sequence at the end of a chunk
}

func (s *scrollback) write(p []byte) {
	if len(s.partial) > 0 {
		p = append(s.partial, p...)
		s.partial = nil
	}
	// Keep a trailing incomplete rune for the next chunk.
	if i := lastRuneStart(p); i >= 0 && !utf8.FullRune(p[i:]) {
		s.partial = append([]byte(nil), p[i:]...)
		p = p[:i]
	}
	// The terminal parser ignores DEL, which a shell echoes for
	// backspace: make it a backspace first.
	text := ansi.Strip(strings.ReplaceAll(string(p), "\x7f", "\b"))
	for _, r := range text {
		switch {
		case r == '\n':
			s.lines = append(s.lines, string(s.cur))
			s.cur = s.cur[:0]
		case r == '\r':
		case r == '\b':
			if len(s.cur) > 0 {
				s.cur = s.cur[:len(s.cur)-1]
			}
		case r == '\t':
			for n := 8 - len(s.cur)%8; n > 0; n-- {
				s.cur = append(s.cur, ' ')
			}
		case r < 0x20:
		default:
			s.cur = append(s.cur, r)
		}
	}
	if over := len(s.lines) - maxScrollback; over > 0 {
		s.lines = append(s.lines[:0:0], s.lines[over:]...)
	}
}

// lastRuneStart is the index of the start byte of the last rune of p, or
// -1.
func lastRuneStart(p []byte) int {
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax; i-- {
		if utf8.RuneStart(p[i]) {
			return i
		}
	}
	return -1
}

func (s *scrollback) String() string {
	return strings.Join(append(s.lines[:len(s.lines):len(s.lines)], string(s.cur)), "\n")
}

// consoleView is attached to one device's board console, full screen:
// what the board prints scrolls by, keys are typed into the board, and
// ctrl+] detaches. It attaches again when the stream drops, and while
// the board is off.
type consoleView struct {
	sh     *shared
	device string
	keys   consoleKeys
	vp     viewport.Model
	width  int
	height int

	id       int // current session; 0 when detached
	rc       io.ReadCloser
	cancel   context.CancelFunc
	state    string // attaching, attached, board is off, ...
	stateErr bool
	text     scrollback
	backoff  time.Duration

	pending []byte // typed, not yet sent: sends go one at a time, in order
	sending bool
}

type consoleKeys struct {
	Detach, ScrollUp, ScrollDown key.Binding
}

func newConsoleView(sh *shared, device string) *consoleView {
	return &consoleView{sh: sh, device: device, vp: viewport.New(0, 0), state: "attaching",
		keys: consoleKeys{
			Detach:     key.NewBinding(key.WithKeys("ctrl+]"), key.WithHelp("ctrl+]", "detach")),
			ScrollUp:   key.NewBinding(key.WithKeys("pgup", "shift+up"), key.WithHelp("pgup", "scroll back")),
			ScrollDown: key.NewBinding(key.WithKeys("pgdown", "shift+down"), key.WithHelp("pgdn", "scroll forward")),
		}}
}

func (v *consoleView) FullScreen() {}

func (v *consoleView) Init() tea.Cmd { return v.attach() }

func (v *consoleView) attach() tea.Cmd {
	v.id = v.sh.nextID()
	return attachConsoleCmd(v.sh.client, v.id, v.device)
}

// Close ends the session: the stream closes and what it still delivers
// is dropped.
func (v *consoleView) Close() {
	v.release()
	v.id = 0
}

// release closes the current stream.
func (v *consoleView) release() {
	if v.cancel != nil {
		v.cancel()
		v.cancel = nil
	}
	if v.rc != nil {
		v.rc.Close()
		v.rc = nil
	}
}

func (v *consoleView) SetSize(w, h int) {
	// Whether it follows is decided at the old size: a shorter screen
	// over the same lines is no longer at their bottom, nor is one whose
	// lines wrap onto more.
	follow := v.following()
	v.width, v.height = w, h
	v.vp.Width, v.vp.Height = w, max(0, h-1)
	v.setContent(follow)
}

func (v *consoleView) Title() string { return "Console " + v.device }

func (v *consoleView) Keys() []key.Binding {
	return []key.Binding{v.keys.Detach, v.keys.ScrollUp, v.keys.ScrollDown}
}

// following reports whether the console shows the newest output, and so
// keeps showing it as more comes.
func (v *consoleView) following() bool {
	return v.vp.AtBottom() || v.vp.TotalLineCount() == 0
}

// setContent renders the text into the viewport, at the bottom when
// follow says so.
func (v *consoleView) setContent(follow bool) {
	text := v.text.String()
	if v.width > 0 {
		// A console wraps long lines as a terminal does.
		text = ansi.Hardwrap(text, v.width, true)
	}
	v.vp.SetContent(text)
	if follow {
		v.vp.GotoBottom()
	}
}

func (v *consoleView) Update(msg tea.Msg) (view, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.KeyMsg:
		s := msg.String()
		switch {
		case matches(s, v.keys.Detach):
			return v, send(popMsg{})
		case matches(s, v.keys.ScrollUp):
			v.vp.PageUp()
			return v, nil
		case matches(s, v.keys.ScrollDown):
			v.vp.PageDown()
			return v, nil
		}
		if b := keyBytes(msg); len(b) > 0 {
			v.pending = append(v.pending, b...)
			v.vp.GotoBottom()
			return v, v.flush()
		}
	case consoleMsg:
		if msg.session() != v.id || v.id == 0 {
			if m, ok := msg.(consoleOpenedMsg); ok {
				m.cancel()
				m.rc.Close()
			}
			return v, nil
		}
		return v, v.session(msg)
	}
	return v, nil
}

// session handles a message of the current session.
func (v *consoleView) session(msg consoleMsg) tea.Cmd {
	switch msg := msg.(type) {
	case consoleOpenedMsg:
		v.rc, v.cancel = msg.rc, msg.cancel
		v.state, v.stateErr, v.backoff = "attached", false, 0
		// The daemon sends its scrollback first: it replaces ours.
		v.text = scrollback{}
		v.setContent(true)
		return tea.Batch(readConsoleCmd(v.id, v.rc), v.flush())
	case consoleFailedMsg:
		v.backoff = nextBackoff(v.backoff)
		wait := v.backoff
		var ae *api.Error
		switch {
		case errors.As(msg.err, &ae) && ae.Reason == api.ReasonUnavailable:
			wait = max(wait, boardOffRetry)
			v.state = "board is off, retrying"
		case errors.As(msg.err, &ae):
			v.state = ae.Message + ", retrying"
		default:
			v.state = "cannot attach: " + msg.err.Error()
		}
		v.stateErr = true
		v.pending = nil
		return v.retry(wait)
	case consoleDataMsg:
		follow := v.following()
		v.text.write(msg.data)
		v.setContent(follow)
		return readConsoleCmd(v.id, v.rc)
	case consoleEndedMsg:
		v.release()
		v.state, v.stateErr = "stream ended, attaching again", true
		v.backoff = nextBackoff(v.backoff)
		return v.retry(v.backoff)
	case consoleSentMsg:
		v.sending = false
		if msg.err != nil {
			v.state, v.stateErr = "typing failed: "+errText(msg.err), true
		}
		return v.flush()
	case consoleRetryMsg:
		v.state = "attaching"
		return v.attach()
	}
	return nil
}

func (v *consoleView) retry(d time.Duration) tea.Cmd {
	id := v.id
	return tea.Tick(d, func(time.Time) tea.Msg { return consoleRetryMsg{id} })
}

// flush sends what was typed when attached and no send is on its way.
func (v *consoleView) flush() tea.Cmd {
	if v.sending || len(v.pending) == 0 || v.rc == nil {
		return nil
	}
	n := min(len(v.pending), maxConsoleSend)
	data := append([]byte(nil), v.pending[:n]...)
	v.pending = v.pending[n:]
	v.sending = true
	return sendConsoleCmd(v.sh.client, v.id, v.device, data)
}

func (v *consoleView) View() string {
	st := v.sh.styles
	state := st.ok.Render(v.state)
	if v.stateErr {
		state = st.bad.Render(v.state)
	}
	bar := st.title.Render("console "+v.device) + "  " + state + "  "
	if !v.following() {
		// New output is not on screen: say so, and how to get to it.
		bar += st.warn.Render("scrolled back, pgdn for newer") + "  "
	}
	bar += st.dim.Render("ctrl+] detach  pgup/pgdn scroll")
	body := v.vp.View()
	if v.text.String() == "" {
		body = st.dim.Render("  (no output yet)")
	}
	return fit(bar, v.width) + "\n" + padLines(body, v.width, v.vp.Height)
}
