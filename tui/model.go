package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"wasmbed.io/wasmbed/daemon/api"
	"wasmbed.io/wasmbed/daemon/client"
)

// refreshDelay is how long the views may lag the cache: changes that
// arrive together rebuild the views once.
const refreshDelay = 100 * time.Millisecond

// defaultInfoInterval is how often the daemon's Info is read again.
const defaultInfoInterval = 30 * time.Second

// Options configure the console.
type Options struct {
	// Client talks to the daemon; required.
	Client *client.Client
	// Address is the daemon's address as the header shows it.
	Address string
	// Now is the clock that ages and the "updated" time are read from;
	// time.Now when nil. Tests fix it so that frames do not change with
	// time.
	Now func() time.Time
	// InfoInterval is how often the daemon's Info (version, store) is
	// read again; 30s when 0.
	InfoInterval time.Duration
	// Renderer draws the styles; lipgloss's default renderer (the
	// process's terminal) when nil. A console served over SSH passes one
	// made for its session, with that terminal's color profile.
	Renderer *lipgloss.Renderer
}

// Model is the console's root model: it owns the window size, the stack
// of views (the active one on top), the key map, the styles, the prompt
// and confirmation line, the error banner and the connection to the
// daemon. Create it with New; it is a tea.Model.
type Model struct {
	sh        *shared
	addr      string
	infoEvery time.Duration
	keys      globalKeys
	nav       listKeys
	width     int
	height    int

	views map[string]view // the top-level views, kept with their filters
	stack []view
	// history is the top-level views jumps left, the last one last: esc
	// with nothing else to undo goes back to it.
	history []view

	prompt     prompt
	filterPrev string // the filter when / opened, restored by esc
	confirm    *confirmMsg
	status     statusMsg
	banner     string // the daemon is unreachable; "" when all is well
	footerH    int    // lines of the footer: more than one for a long error

	// The connection: gen numbers attempts, so that messages of an
	// abandoned stream are dropped.
	gen            int
	stream         *client.EventStream
	cancelStream   context.CancelFunc
	connected      bool
	started        time.Time // the daemon's start, from Info: tells a restart
	backoff        time.Duration
	info           api.Info
	sum            summary
	updated        time.Time // the last change seen
	refreshPending bool
	quitting       bool // the program is ending: messages are dropped
}

// New returns the root model for opts.
func New(opts Options) (*Model, error) {
	if opts.Client == nil {
		return nil, errors.New("tui: a daemon client is required")
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	every := opts.InfoInterval
	if every <= 0 {
		every = defaultInfoInterval
	}
	r := opts.Renderer
	if r == nil {
		r = lipgloss.DefaultRenderer()
	}
	sh := &shared{client: opts.Client, cache: newCache(), styles: newStylesFor(r), now: now}
	m := &Model{sh: sh, addr: opts.Address, infoEvery: every, keys: newGlobalKeys(), nav: newListKeys(), gen: 1, footerH: 1}
	m.views = map[string]view{
		"devices":  newDevicesView(sh),
		"apps":     newAppsView(sh),
		"gateways": newGatewaysView(sh),
		"events":   newEventsView(sh),
		"topology": newTopologyView(sh),
	}
	m.stack = []view{m.views["devices"]}
	return m, nil
}

// Run runs the console on the terminal, in the alternate screen, until
// the user quits or ctx ends (which is not an error).
func Run(ctx context.Context, opts Options) error {
	m, err := New(opts)
	if err != nil {
		return err
	}
	final, err := tea.NewProgram(m, tea.WithAltScreen(), tea.WithContext(ctx)).Run()
	if fm, ok := final.(*Model); ok {
		fm.shutdown()
	} else {
		m.shutdown()
	}
	if errors.Is(err, tea.ErrProgramKilled) && ctx.Err() != nil {
		return nil
	}
	return err
}

// Init connects to the daemon and starts the clocks.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.connect(), clockCmd(), infoTickCmd(m.infoEvery))
}

func (m *Model) connect() tea.Cmd {
	return connectCmd(m.sh.client, m.gen, m.started, m.sh.cache.lastSeq)
}

func (m *Model) active() view { return m.stack[len(m.stack)-1] }

// bodySize is the size the active view gets: the screen less the
// header, banner, title and footer lines, or all of it for a full-screen
// view.
func (m *Model) bodySize(v view) (int, int) {
	if _, ok := v.(fullScreen); ok {
		return m.width, m.height
	}
	h := m.height - 3 - m.footerH
	if m.banner != "" {
		h--
	}
	return m.width, max(0, h)
}

// resize gives every view its size, after the window or the banner
// changed.
func (m *Model) resize() {
	for _, v := range m.views {
		v.SetSize(m.bodySize(v))
	}
	for _, v := range m.stack {
		v.SetSize(m.bodySize(v))
	}
}

func (m *Model) setBanner(s string) {
	if s != m.banner {
		m.banner = s
		m.resize()
	}
}

// sync has the active view rebuild what it derives from the cache.
func (m *Model) sync() {
	if s, ok := m.active().(syncer); ok {
		s.Sync()
	}
}

// changed notes a change of the cache and asks for a refresh unless one
// is due.
func (m *Model) changed() tea.Cmd {
	m.updated = m.sh.now()
	if m.refreshPending {
		return nil
	}
	m.refreshPending = true
	return tea.Tick(refreshDelay, func(time.Time) tea.Msg { return refreshMsg{} })
}

func (m *Model) refresh() {
	m.refreshPending = false
	m.sum = m.sh.cache.summary()
	m.sync()
}

// Update handles a message: keys, then the connection, then what views
// ask for; anything else goes to the active view. The views are resized
// when the footer grew or shrank (an error shown in full, then gone).
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	if n := m.footerHeight(); n != m.footerH {
		m.footerH = n
		m.resize()
	}
	return m, cmd
}

func (m *Model) update(msg tea.Msg) tea.Cmd {
	if m.quitting {
		// Streams ended by the quit still report; the screen stays as
		// the user left it.
		if o, ok := msg.(consoleOpenedMsg); ok {
			o.cancel()
			o.rc.Close()
		}
		if c, ok := msg.(connectedMsg); ok {
			c.stream.Close()
			c.cancel()
		}
		return nil
	}
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		m.resize()
		m.sync()
		return nil
	case tea.KeyMsg:
		if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
			// Keys typed faster than they are read (or sent by a
			// script, as tmux send-keys does) arrive as one message;
			// each is a key of its own: ":apps" opens the prompt.
			var cmds []tea.Cmd
			for _, r := range msg.Runes {
				cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}))
			}
			return tea.Batch(cmds...)
		}
		return m.key(msg)

	case connectedMsg:
		if msg.gen != m.gen {
			msg.stream.Close()
			msg.cancel()
			return nil
		}
		m.stream, m.cancelStream, m.connected = msg.stream, msg.cancel, true
		m.started, m.info, m.backoff = msg.info.Started, msg.info, 0
		m.sh.cache.reset(msg.devices, msg.apps, msg.gateways, msg.fresh)
		m.setBanner("")
		m.updated = m.sh.now()
		m.refresh()
		return nextEventCmd(m.gen, m.stream)
	case connectFailedMsg:
		if msg.gen != m.gen {
			return nil
		}
		m.backoff = nextBackoff(m.backoff)
		m.setBanner(fmt.Sprintf("daemon unreachable: %s; retrying in %s", errText(msg.err), m.backoff))
		return retryCmd(m.gen, m.backoff)
	case retryMsg:
		if msg.gen != m.gen {
			return nil
		}
		return m.connect()
	case eventMsg:
		if msg.gen != m.gen {
			return nil
		}
		var cmd tea.Cmd
		if m.sh.cache.apply(msg.event) {
			cmd = tea.Batch(m.changed(), m.watch(msg.event))
		}
		return tea.Batch(cmd, nextEventCmd(m.gen, m.stream))
	case badEventMsg:
		if msg.gen != m.gen {
			return nil
		}
		return nextEventCmd(m.gen, m.stream)
	case streamEndedMsg:
		if msg.gen != m.gen {
			return nil
		}
		m.dropStream()
		m.connected = false
		m.gen++
		if errors.Is(msg.err, io.EOF) {
			// The daemon ended the stream (a reader that fell behind, or
			// shutting down): resume shortly, quietly; a failure to
			// reconnect shows the banner. The pause keeps a daemon (or a
			// proxy) that ends every stream from being called in a loop.
			return retryCmd(m.gen, minBackoff)
		}
		m.backoff = nextBackoff(m.backoff)
		m.setBanner(fmt.Sprintf("event stream broke: %s; reconnecting in %s", errText(msg.err), m.backoff))
		return retryCmd(m.gen, m.backoff)
	case refreshMsg:
		m.refresh()
		return nil
	case clockMsg:
		m.sync()
		return clockCmd()
	case infoTickMsg:
		return infoCmd(m.sh.client)
	case infoMsg:
		if msg.err == nil && m.connected && msg.info.Started.Equal(m.started) {
			m.info = msg.info
		}
		return infoTickCmd(m.infoEvery)

	case actionDoneMsg:
		if msg.err != nil {
			m.status = statusMsg{text: msg.what + ": " + errText(msg.err), err: true}
			return nil
		}
		m.status = statusMsg{text: msg.what + ": done"}
		if msg.app != nil {
			m.sh.cache.putApp(msg.app)
			return m.changed()
		}
		return nil
	case tokenMsg:
		if msg.err != nil {
			m.status = statusMsg{text: "token for " + msg.device + ": " + errText(msg.err), err: true}
			return nil
		}
		m.status = statusMsg{text: "token for " + msg.device + ": issued; esc forgets it"}
		return m.push(newTokenView(m.sh, msg.token))
	case pushMsg:
		return m.push(msg.v)
	case popMsg:
		m.pop()
		return nil
	case jumpMsg:
		return m.jump(msg.name, msg.filter)
	case confirmMsg:
		m.confirm = &msg
		return nil
	case statusMsg:
		m.status = msg
		return nil
	case consoleMsg:
		return m.routeConsole(msg)
	case livePollMsg:
		return m.routeLive(msg.id, msg)
	case liveDeviceMsg:
		return m.routeLive(msg.id, msg)
	case appDevicesMsg:
		return m.routeLive(msg.id, msg)
	}
	v, cmd := m.active().Update(msg)
	m.stack[len(m.stack)-1] = v
	return cmd
}

// routeConsole hands a console session's message to the console view of
// that session, or ends a stream nobody waits for any more.
func (m *Model) routeConsole(msg consoleMsg) tea.Cmd {
	if c, ok := m.active().(*consoleView); ok && c.id == msg.session() {
		v, cmd := c.Update(msg)
		m.stack[len(m.stack)-1] = v
		return cmd
	}
	if o, ok := msg.(consoleOpenedMsg); ok {
		o.cancel()
		o.rc.Close()
	}
	return nil
}

// routeLive hands a live poll's message to the view of that poll
// wherever it is on the stack (under a console, say); once the view is
// closed, the poll ends.
func (m *Model) routeLive(id int, msg tea.Msg) tea.Cmd {
	for i, v := range m.stack {
		if p, ok := v.(poller); ok && p.Poll() == id {
			nv, cmd := v.Update(msg)
			m.stack[i] = nv
			return cmd
		}
	}
	return nil
}

// watch shows an event the cache took to the views on the stack that
// hold more than the cache, which may read again.
func (m *Model) watch(e api.Event) tea.Cmd {
	var cmds []tea.Cmd
	for _, v := range m.stack {
		if w, ok := v.(watcher); ok {
			cmds = append(cmds, w.Watch(e))
		}
	}
	return tea.Batch(cmds...)
}

func (m *Model) dropStream() {
	if m.cancelStream != nil {
		m.cancelStream()
		m.cancelStream = nil
	}
	if m.stream != nil {
		m.stream.Close()
		m.stream = nil
	}
}

// Close ends the streams the console holds (the event stream, a board
// console). Run does it when the program ends; who runs the Model in a
// program of their own calls it once that program has returned.
func (m *Model) Close() { m.shutdown() }

// shutdown ends the streams the console holds.
func (m *Model) shutdown() {
	m.dropStream()
	for _, v := range m.stack {
		if c, ok := v.(closer); ok {
			c.Close()
		}
	}
}

func (m *Model) push(v view) tea.Cmd {
	v.SetSize(m.bodySize(v))
	m.stack = append(m.stack, v)
	m.sync()
	return v.Init()
}

func (m *Model) pop() {
	if len(m.stack) <= 1 {
		return
	}
	if c, ok := m.active().(closer); ok {
		c.Close()
	}
	m.stack = m.stack[:len(m.stack)-1]
	m.sync()
}

// maxHistory bounds the views esc can go back through.
const maxHistory = 32

// jump makes the named top-level view the only one on the stack, with
// its filter set when filter is not nil. The top-level view it leaves
// goes on the history; the views opened over it are closed.
func (m *Model) jump(name string, filter *string) tea.Cmd {
	v, ok := m.views[name]
	if !ok {
		return nil
	}
	for len(m.stack) > 1 {
		m.pop()
	}
	if from := m.stack[0]; from != v {
		m.history = append(m.history, from)
		if len(m.history) > maxHistory {
			m.history = append(m.history[:0:0], m.history[1:]...)
		}
	}
	if f, ok := v.(filterable); ok && filter != nil {
		f.SetFilter(*filter)
	}
	return m.setTop(v)
}

// back returns to the top-level view the last jump left, when there is
// one and nothing is open over the current one.
func (m *Model) back() tea.Cmd {
	n := len(m.history)
	if n == 0 || len(m.stack) > 1 {
		return nil
	}
	v := m.history[n-1]
	m.history[n-1] = nil
	m.history = m.history[:n-1]
	return m.setTop(v)
}

// setTop makes v the top-level view, alone on the stack.
func (m *Model) setTop(v view) tea.Cmd {
	m.stack[0] = v
	v.SetSize(m.bodySize(v))
	m.sync()
	return v.Init()
}

// key handles a key press: a full-screen view takes every key; then an
// open question, the prompt, the global keys, and last the active view.
func (m *Model) key(k tea.KeyMsg) tea.Cmd {
	s := k.String()
	if _, ok := m.active().(fullScreen); ok {
		v, cmd := m.active().Update(k)
		m.stack[len(m.stack)-1] = v
		return cmd
	}
	if m.confirm != nil {
		c := m.confirm
		switch s {
		case "y", "Y":
			m.confirm = nil
			m.status = statusMsg{text: strings.TrimSuffix(c.question, "?") + "..."}
			return c.yes
		case "n", "N", "esc", "ctrl+c":
			m.confirm = nil
			m.status = statusMsg{text: "cancelled"}
		}
		return nil
	}
	if m.prompt.mode != promptOff {
		return m.promptKey(k)
	}
	if m.refreshPending {
		// A key acts on what the screen will show, not on rows a
		// pending refresh is about to replace.
		m.refresh()
	}
	m.status = statusMsg{}
	switch {
	case matches(s, m.keys.Quit):
		m.quitting = true
		m.shutdown()
		return tea.Quit
	case matches(s, m.keys.Command):
		m.prompt.open(promptCommand, "")
		return nil
	case matches(s, m.keys.Filter):
		f, ok := m.active().(filterable)
		if !ok {
			m.status = statusMsg{text: "this view has no filter", err: true}
			return nil
		}
		m.filterPrev = f.Filter()
		m.prompt.open(promptFilter, f.Filter())
		return nil
	case matches(s, m.keys.Help):
		if _, ok := m.active().(*helpView); !ok {
			return m.push(newHelpView(m.sh.styles, m.helpSections()))
		}
		return nil
	case matches(s, m.keys.Back):
		if f, ok := m.active().(filterable); ok && f.Filter() != "" {
			f.SetFilter("")
			return nil
		}
		if len(m.stack) > 1 {
			m.pop()
			return nil
		}
		return m.back()
	}
	v, cmd := m.active().Update(k)
	m.stack[len(m.stack)-1] = v
	return cmd
}

func (m *Model) promptKey(k tea.KeyMsg) tea.Cmd {
	mode := m.prompt.mode
	switch k.Type {
	case tea.KeyEnter:
		value := m.prompt.String()
		m.prompt.close()
		if mode == promptFilter {
			return nil // applied as typed
		}
		name, ok := resolveView(value)
		if !ok {
			if strings.TrimSpace(value) != "" {
				m.status = statusMsg{text: fmt.Sprintf("no view %q; try %s", value, strings.Join(topViews, ", ")), err: true}
			}
			return nil
		}
		return m.jump(name, nil)
	case tea.KeyEsc, tea.KeyCtrlC:
		m.prompt.close()
		if f, ok := m.active().(filterable); ok && mode == promptFilter {
			f.SetFilter(m.filterPrev)
		}
		return nil
	}
	if m.prompt.edit(k) && mode == promptFilter {
		if f, ok := m.active().(filterable); ok {
			f.SetFilter(m.prompt.String())
		}
	}
	return nil
}

// offered is keys less those the active view does not take: / only
// where there is a filter, since elsewhere what is typed after it would
// run as the view's keys.
func (m *Model) offered(keys ...key.Binding) []key.Binding {
	if _, ok := m.active().(filterable); ok {
		return keys
	}
	return slices.DeleteFunc(keys, func(k key.Binding) bool { return k.Help().Key == m.keys.Filter.Help().Key })
}

// helpSections are the keys help lists: the active view's, moving in
// lists, and the global ones.
func (m *Model) helpSections() []helpSection {
	return []helpSection{
		{title: m.active().Title(), keys: m.active().Keys()},
		{title: "Lists", keys: m.nav.list()},
		{title: "Global", keys: m.offered(m.keys.list()...)},
		{title: "Views", keys: viewKeys()},
	}
}

// View renders the screen: header, banner, title, the active view and
// the footer; a full-screen view alone.
func (m *Model) View() string {
	if m.width <= 0 || m.height <= 0 {
		return ""
	}
	v := m.active()
	if _, ok := v.(fullScreen); ok {
		return v.View()
	}
	st := m.sh.styles
	var b strings.Builder
	b.WriteString(renderHeader(st, m.headerData(), m.width))
	if m.banner != "" {
		b.WriteString("\n" + st.banner.Render(fit(" "+m.banner, m.width)))
	}
	b.WriteString("\n" + fit(st.title.Render(" "+v.Title()), m.width))
	b.WriteString("\n" + v.View())
	for _, l := range m.footerLines() {
		b.WriteString("\n" + l)
	}
	return b.String()
}

// maxStatusLines is the most lines the footer takes to show an error in
// full; what does not fit is cut.
const maxStatusLines = 3

// footerLines is the footer at the screen's width: one line, or the
// error of the last action.
func (m *Model) footerLines() []string {
	if m.errorShown() {
		return m.errorLines()
	}
	return []string{fit(m.footer(), m.width)}
}

// footerHeight is how many lines footerLines has.
func (m *Model) footerHeight() int {
	if m.errorShown() {
		return len(m.errorLines())
	}
	return 1
}

// errorShown reports whether the footer shows the error of the last
// action: nothing else (the prompt, a question) takes the footer, and
// the screen is wide enough to wrap it.
func (m *Model) errorShown() bool {
	return m.status.err && m.status.text != "" && m.prompt.mode == promptOff && m.confirm == nil && m.width >= 20
}

// errorLines is the error of the last action, marked as one (colors may
// be off) and wrapped onto up to maxStatusLines lines so that the
// daemon's reason reads in full.
func (m *Model) errorLines() []string {
	lines := strings.Split(ansi.Wrap("error: "+m.status.text, m.width-1, ""), "\n")
	if len(lines) > maxStatusLines {
		lines = append(lines[:maxStatusLines-1], strings.Join(lines[maxStatusLines-1:], " "))
	}
	for i, l := range lines {
		lines[i] = m.sh.styles.errText.Render(fit(" "+l, m.width))
	}
	return lines
}

func (m *Model) headerData() headerData {
	return headerData{
		addr: m.addr, info: m.info, connected: m.connected, sum: m.sum,
		updated: m.updated, now: m.sh.now(),
	}
}

// footer is the prompt, the open question, the status of the last
// action, or the main keys.
func (m *Model) footer() string {
	st := m.sh.styles
	switch {
	case m.prompt.mode != promptOff:
		return m.prompt.View()
	case m.confirm != nil:
		return st.warn.Render(m.confirm.question) + " " + st.key.Render("[y/n]")
	case m.status.text != "" && m.status.err:
		return st.errText.Render("error: " + m.status.text)
	case m.status.text != "":
		return m.status.text
	}
	var hints []key.Binding
	for _, k := range m.active().Keys() {
		if len(hints) == 2 {
			break
		}
		hints = append(hints, k)
	}
	hints = append(hints, m.offered(m.keys.Help, m.keys.Command, m.keys.Filter, m.keys.Back, m.keys.Quit)...)
	parts := make([]string, 0, len(hints))
	for _, k := range hints {
		parts = append(parts, st.key.Render("<"+k.Help().Key+">")+" "+shortHelp(k.Help().Desc))
	}
	return " " + strings.Join(parts, " ")
}

// shortHelp is the word of a key's description the footer shows: what
// comes before a colon, else the first word.
func shortHelp(desc string) string {
	if before, _, ok := strings.Cut(desc, ":"); ok {
		return before
	}
	word, _, _ := strings.Cut(desc, " ")
	return strings.TrimRight(word, ",;.")
}

// headerData is what the header shows.
type headerData struct {
	addr      string
	info      api.Info
	connected bool
	sum       summary
	updated   time.Time
	now       time.Time
}

// renderHeader renders the two header lines at width: the daemon and its
// store with the age of the last update, then the fleet's counts.
func renderHeader(st *styles, h headerData, width int) string {
	left := st.brand.Render("wasmbed") + " " + h.addr
	if h.info.Store != "" {
		left += st.dim.Render(" · store ") + h.info.Store
	}
	right := st.dim.Render("connecting")
	if h.connected {
		right = st.dim.Render("updated " + ageOf(h.updated, h.now) + " ago")
	}
	gap := width - visibleWidth(left) - visibleWidth(right)
	line1 := fit(left, width)
	if gap >= 1 {
		line1 = left + strings.Repeat(" ", gap) + right
	}
	if !h.connected && h.updated.IsZero() {
		return line1 + "\n" + fit(st.dim.Render("waiting for the daemon"), width)
	}
	s := h.sum
	count := func(ok, total int) health {
		switch {
		case total == 0:
			return healthNeutral
		case ok == total:
			return healthOK
		case ok == 0:
			return healthBad
		}
		return healthWarn
	}
	failed := st.dim.Render(fmt.Sprintf("%d failed", s.appFail))
	if s.appFail > 0 {
		failed = st.bad.Render(fmt.Sprintf("%d failed", s.appFail))
	}
	line2 := "gateways " + st.health(count(s.gwUp, s.gwTotal), fmt.Sprintf("%d/%d", s.gwUp, s.gwTotal)) + " up" +
		"   devices " + st.health(count(s.devOnline, s.devTotal), fmt.Sprintf("%d/%d", s.devOnline, s.devTotal)) + " online" +
		"   apps " + st.health(count(s.appRunning, s.appTotal), fmt.Sprintf("%d/%d", s.appRunning, s.appTotal)) + " running, " + failed
	return line1 + "\n" + fit(line2, width)
}
