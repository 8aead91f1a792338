package tui

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/octostore/octostore/tools/client"
)

// Config configures the view.
type Config struct {
	API    API
	Server string // shown in the header (the server URL)
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Backoff is the wait before reconnection attempt n (1, 2, …); default:
	// 250ms doubling up to 5s, with jitter.
	Backoff func(attempt int) time.Duration
	// MetricsEvery is the /metrics scrape interval (default 1s).
	MetricsEvery time.Duration
	// Tick is the redraw interval of the time-left bars (default 250ms).
	Tick time.Duration
	// ConnectTimeout bounds opening the event stream (default 10s).
	ConnectTimeout time.Duration
	// PollEvery is how often what changes without an event is read again
	// while it is on screen: the open lock's waiters, the semaphores shown,
	// the sessions (default 2s).
	PollEvery time.Duration
}

// view is one of the tabs.
type view int

const (
	viewLocks view = iota
	viewSemaphores
	viewSessions
	viewLimits
	viewFlags
	viewConfig
	numViews
)

var viewNames = [numViews]string{"Locks", "Semaphores", "Sessions", "Limits", "Flags", "Config"}

// listViews are the views that are tables of a listing (listTable).
var listViews = []view{viewSessions, viewLimits, viewFlags, viewConfig}

// connection states.
type connState int

const (
	connConnecting connState = iota // opening the event stream
	connSyncing                     // stream open, listing locks
	connLive                        // stream open, table in sync
	connWaiting                     // disconnected, waiting to retry
	connRefused                     // the server refused the credentials (401/403): no retry until r
)

// refusedText is what the header says when the server refuses the token,
// revokedText when it ended the stream because the token was revoked or
// rotated meanwhile.
const (
	refusedText = "✗ unauthorized: check --token"
	revokedText = "✗ token revoked or rotated: restart with a valid one"
)

// listState tracks the listing of one of the non-lock views.
type listState struct {
	loaded, inFlight, dirty bool
	err                     error
}

// ringSize bounds the recent lock events kept for the detail pane.
const ringSize = 1000

// Model is the root Bubble Tea model.
type Model struct {
	cfg    Config
	ctx    context.Context
	cancel context.CancelFunc
	keys   keyMap
	st     *styles
	help   help.Model
	input  textinput.Model

	width, height int
	active        view
	filtering     bool
	detailOpen    bool
	detailName    string

	locks                            lockTable
	sems                             semTable
	sessions, limits, flags, configs listTable
	lists                            [numViews]listState
	// The last listings, kept so that their relative times ("resets in",
	// "ago") are recomputed on every tick.
	sessionData []client.SessionInfo
	limitData   []client.LimitInfo
	flagData    []client.Flag
	configData  []client.ConfigEntry

	// The lock detail pane's status read (waiters, lock-delay, metadata).
	lockState     *client.LockState
	lockStateName string // whose lockState is
	lockStateErr  error
	lockReading   bool
	// Semaphore status reads: one batch in flight; names wanted meanwhile
	// wait for the next.
	semReading bool
	semWant    map[string]bool
	semErr     error
	// poll numbers the screen whose reads are polled (pollTickMsg).
	poll int

	// connection
	state   connState
	gen     int // connection generation: messages of older ones are dropped
	attempt int
	connErr error
	retryAt time.Time
	stream  *client.EventStream
	pending []client.Event // events received while a lock listing is in flight

	ring []client.Event // recent lock events, oldest first

	rates      rates
	metricsNA  bool  // the credentials may not read /metrics
	metricsErr error // last scrape error (other than auth)
	// cluster is the last GET /cluster (cluster mode), shown in the header
	// while clusterOK; clusterNA once the server said it has none (404: a
	// single node) or refused the credentials.
	cluster   client.ClusterStatus
	clusterOK bool
	clusterNA bool

	now      time.Time
	quitting bool
}

// New returns the model; Run it with tea.NewProgram, or use Run.
func New(cfg Config) *Model {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Backoff == nil {
		cfg.Backoff = defaultBackoff
	}
	if cfg.MetricsEvery <= 0 {
		cfg.MetricsEvery = time.Second
	}
	if cfg.Tick <= 0 {
		cfg.Tick = 250 * time.Millisecond
	}
	if cfg.ConnectTimeout <= 0 {
		cfg.ConnectTimeout = 10 * time.Second
	}
	if cfg.PollEvery <= 0 {
		cfg.PollEvery = 2 * time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	in := textinput.New()
	in.Prompt = "/"
	in.Placeholder = "name prefix"
	in.CharLimit = 128
	m := &Model{
		cfg: cfg, ctx: ctx, cancel: cancel, keys: defaultKeyMap(), st: defaultStyles(), help: help.New(), input: in,
		locks:    newLockTable(),
		sems:     newSemTable(),
		sessions: listTable{what: "sessions"},
		limits:   listTable{what: "rate limits"},
		flags:    listTable{what: "flags"},
		configs:  listTable{what: "config keys"},
		semWant:  map[string]bool{},
		gen:      1,
		now:      cfg.Now(),
		rates:    rates{p99: math.NaN()},
	}
	m.sessions.SetRows(sessionRows(nil, m.now))
	m.limits.SetRows(limitRows(nil, m.now))
	m.flags.SetRows(flagRows(nil, m.now))
	m.configs.SetRows(configRows(nil, m.now))
	m.SetSize(80, 24)
	return m
}

func defaultBackoff(attempt int) time.Duration {
	d := 250 * time.Millisecond
	for i := 1; i < attempt && d < 5*time.Second; i++ {
		d *= 2
	}
	if d > 5*time.Second {
		d = 5 * time.Second
	}
	return d/2 + rand.N(d/2+1)
}

// Init starts the connection, the redraw tick and the metrics scrape.
func (m *Model) Init() tea.Cmd {
	return tea.Batch(m.connect(m.gen), m.tick(), m.scrape(), m.askCluster())
}

// Close cancels every request in flight and ends the event stream.
func (m *Model) Close() {
	m.cancel()
	if m.stream != nil {
		m.stream.Close()
		m.stream = nil
	}
}

// SetSize lays the view out for a w×h terminal.
func (m *Model) SetSize(w, h int) {
	if w < 20 {
		w = 20
	}
	if h < 6 {
		h = 6
	}
	m.width, m.height = w, h
	m.help.Width = w
	tableH, _ := m.layout()
	m.locks.SetSize(w, tableH)
	m.sems.SetSize(w, tableH)
	m.sessions.SetSize(w, tableH)
	m.limits.SetSize(w, tableH)
	m.flags.SetSize(w, tableH)
	m.configs.SetSize(w, tableH)
}

// layout splits the height: header and tabs (2 lines), the table, the
// detail pane (when open), the help.
func (m *Model) layout() (tableH, detailH int) {
	helpH := 1
	if m.help.ShowAll {
		for _, col := range m.keys.FullHelp() {
			helpH = max(helpH, len(col))
		}
	}
	avail := m.height - 2 - helpH
	if m.detailOpen && (m.active == viewLocks || m.active == viewSemaphores) {
		detailH = avail / 2
		if detailH < 4 {
			detailH = 4
		}
	}
	tableH = avail - detailH
	if tableH < 2 {
		tableH = 2
	}
	return tableH, detailH
}

// --- commands: every network call runs in one of these ---

func (m *Model) connect(gen int) tea.Cmd {
	api, ctx, timeout := m.cfg.API, m.ctx, m.cfg.ConnectTimeout
	return func() tea.Msg {
		// The stream outlives the connect, so the timeout cancels only an
		// attempt that has not been answered.
		sctx, cancel := context.WithCancel(ctx)
		t := time.AfterFunc(timeout, cancel)
		s, err := api.Events(sctx, client.EventFilter{})
		stopped := t.Stop()
		if err != nil || !stopped {
			cancel()
			if s != nil {
				s.Close()
			}
			switch {
			case !stopped:
				err = errors.New("timed out opening the event stream")
			case errors.Is(err, context.Canceled) && ctx.Err() == nil:
				// The client reports a refused connection on a stream as
				// its own cancellation.
				err = errors.New("server unreachable")
			}
			return connectFailedMsg{gen: gen, err: err}
		}
		return connectedMsg{gen: gen, stream: s}
	}
}

// maxBatch bounds the events handed to Update at once.
const maxBatch = 512

func waitEvents(gen int, s *client.EventStream) tea.Cmd {
	return func() tea.Msg {
		e, ok := <-s.C
		if !ok {
			return streamEndedMsg{gen: gen, err: s.Err()}
		}
		evs := []client.Event{e}
		for len(evs) < maxBatch {
			select {
			case e, ok := <-s.C:
				if !ok {
					return eventsMsg{gen: gen, events: evs} // the next wait reports the end
				}
				evs = append(evs, e)
			default:
				return eventsMsg{gen: gen, events: evs}
			}
		}
		return eventsMsg{gen: gen, events: evs}
	}
}

func closeStream(s *client.EventStream) tea.Cmd {
	if s == nil {
		return nil
	}
	return func() tea.Msg { s.Close(); return nil }
}

func (m *Model) listLocks(gen int) tea.Cmd {
	api, ctx := m.cfg.API, m.ctx
	return func() tea.Msg {
		ls, err := api.ListLocks(ctx)
		return locksListedMsg{gen: gen, locks: ls, err: err}
	}
}

// listSemaphores lists the semaphore slots the token holds (the admin
// key: everybody's) for their names: each one the view does not know yet
// is then read (readSemaphores), which gives all its slots. A user learns
// other users' semaphores from their events only.
func (m *Model) listSemaphores(gen int) tea.Cmd {
	api, ctx := m.cfg.API, m.ctx
	return func() tea.Msg {
		slots, err := api.ListSemaphores(ctx)
		msg := semaphoresListedMsg{gen: gen, err: err}
		for i, sl := range slots {
			if i == 0 || sl.Name != slots[i-1].Name { // by name, then lease
				msg.names = append(msg.names, sl.Name)
			}
		}
		return msg
	}
}

func (m *Model) list(v view) tea.Cmd {
	st := &m.lists[v]
	if st.inFlight {
		st.dirty = true
		return nil
	}
	st.inFlight, st.dirty = true, false
	api, ctx := m.cfg.API, m.ctx
	switch v {
	case viewSessions:
		return func() tea.Msg { ss, err := api.ListSessions(ctx); return sessionsListedMsg{sessions: ss, err: err} }
	case viewLimits:
		return func() tea.Msg { ls, err := api.ListLimits(ctx); return limitsListedMsg{limits: ls, err: err} }
	case viewFlags:
		return func() tea.Msg { fs, err := api.ListFlags(ctx); return flagsListedMsg{flags: fs, err: err} }
	case viewConfig:
		return func() tea.Msg { cs, err := api.ListConfig(ctx); return configListedMsg{configs: cs, err: err} }
	}
	st.inFlight = false
	return nil
}

// readLockStatus reads the lock of the detail pane (GET /locks/{name}).
func (m *Model) readLockStatus(name string) tea.Cmd {
	if m.lockReading {
		return nil
	}
	m.lockReading = true
	api, ctx := m.cfg.API, m.ctx
	return func() tea.Msg {
		st, err := api.LockStatus(ctx, name)
		return lockStatusMsg{name: name, state: st, err: err}
	}
}

// readSemaphores reads the status of the named semaphores, one batch at a
// time: names asked for while a batch is in flight go in the next one.
func (m *Model) readSemaphores(names []string) tea.Cmd {
	for _, n := range names {
		m.semWant[n] = true
	}
	if m.semReading || len(m.semWant) == 0 {
		return nil
	}
	batch := make([]string, 0, len(m.semWant))
	for n := range m.semWant {
		batch = append(batch, n)
	}
	clear(m.semWant)
	m.semReading = true
	api, ctx, since := m.cfg.API, m.ctx, m.sems.Count()
	return func() tea.Msg {
		msg := semaphoresReadMsg{since: since}
		for _, n := range batch {
			st, err := api.SemaphoreStatus(ctx, n)
			switch {
			case errors.Is(err, client.ErrNotFound):
				msg.gone = append(msg.gone, n)
			case err != nil:
				msg.err = err
				return msg
			default:
				msg.states = append(msg.states, *st)
			}
		}
		return msg
	}
}

// restartPoll starts polling what the current screen shows that changes
// without an event, at once and then every PollEvery; the previous
// screen's polling stops (its ticks are dropped).
func (m *Model) restartPoll() tea.Cmd {
	m.poll++
	if !m.polled() {
		return nil
	}
	return tea.Batch(m.pollNow(), m.pollTick())
}

// polled reports whether the current screen has something to poll.
func (m *Model) polled() bool {
	return m.active == viewLocks && m.detailOpen || m.active == viewSemaphores || m.active == viewSessions
}

func (m *Model) pollTick() tea.Cmd {
	poll := m.poll
	return tea.Tick(m.cfg.PollEvery, func(time.Time) tea.Msg { return pollTickMsg{poll: poll} })
}

// pollNow reads what the current screen needs (nothing while the view is
// not in sync with the server: the (re)connect reads it).
func (m *Model) pollNow() tea.Cmd {
	if m.state != connLive {
		return nil
	}
	switch m.active {
	case viewLocks:
		if m.detailOpen {
			return m.readLockStatus(m.detailName)
		}
	case viewSemaphores:
		return m.readSemaphores(m.sems.OnScreen())
	case viewSessions:
		return m.list(viewSessions)
	}
	return nil
}

func (m *Model) scrape() tea.Cmd {
	if m.metricsNA {
		return nil
	}
	api, ctx, now := m.cfg.API, m.ctx, m.cfg.Now
	return func() tea.Msg {
		text, err := api.Metrics(ctx)
		return metricsMsg{at: now(), text: text, err: err}
	}
}

// askCluster asks GET /cluster for the header's node and leader.
func (m *Model) askCluster() tea.Cmd {
	if m.clusterNA {
		return nil
	}
	api, ctx := m.cfg.API, m.ctx
	return func() tea.Msg {
		st, err := api.Cluster(ctx)
		return clusterMsg{st: st, err: err}
	}
}

func (m *Model) tick() tea.Cmd {
	return tea.Tick(m.cfg.Tick, func(t time.Time) tea.Msg { return tickMsg(t) })
}

// reconnect drops the current stream and schedules the next attempt; when
// the server refused the credentials (401/403) it stops instead, as the CLI
// does (exit 5): retrying cannot help until the token changes.
func (m *Model) reconnect(err error) tea.Cmd {
	old := m.stream
	m.stream, m.pending = nil, nil
	m.gen++
	m.connErr = err
	if isAuthErr(err) {
		m.state, m.attempt = connRefused, 0
		return closeStream(old)
	}
	m.attempt++
	d := m.cfg.Backoff(m.attempt)
	if errors.Is(err, client.ErrLagged) {
		d = 0 // we fell behind: resync at once
	}
	m.state = connWaiting
	m.retryAt = m.cfg.Now().Add(d)
	gen := m.gen
	return tea.Batch(closeStream(old), tea.Tick(d, func(time.Time) tea.Msg { return reconnectMsg{gen: gen} }))
}

// --- update ---

// Update handles one message.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.SetSize(msg.Width, msg.Height)
		return m, nil
	case tea.KeyMsg:
		return m, m.key(msg)
	case tickMsg:
		m.now = m.cfg.Now()
		m.locks.Prune(m.now) // lock-delays that are over
		m.refreshRows(m.active)
		return m, m.tick()

	case connectedMsg:
		if msg.gen != m.gen || m.quitting {
			return m, closeStream(msg.stream)
		}
		m.stream, m.state, m.pending = msg.stream, connSyncing, nil
		cmds := []tea.Cmd{waitEvents(msg.gen, msg.stream), m.listLocks(msg.gen)}
		for _, v := range listViews {
			m.lists[v].inFlight = false // answers of the old connection no longer count
			cmds = append(cmds, m.list(v))
		}
		// Every semaphore known is read again (events may have been missed),
		// and the listing finds those held before the view saw any event.
		cmds = append(cmds, m.readSemaphores(m.sems.Names()), m.listSemaphores(msg.gen))
		return m, tea.Batch(cmds...)
	case connectFailedMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		return m, m.reconnect(msg.err)
	case eventsMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		return m, tea.Batch(m.events(msg.events), waitEvents(msg.gen, m.stream))
	case streamEndedMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		err := msg.err
		if err == nil {
			err = errors.New("the server ended the event stream")
		}
		return m, m.reconnect(err)
	case reconnectMsg:
		if msg.gen != m.gen || m.quitting {
			return m, nil
		}
		m.state = connConnecting
		return m, m.connect(msg.gen)

	case locksListedMsg:
		if msg.gen != m.gen || m.state != connSyncing {
			return m, nil
		}
		if msg.err != nil {
			return m, m.reconnect(fmt.Errorf("list locks: %w", msg.err))
		}
		now := m.cfg.Now()
		m.locks.Reset(msg.locks, now)
		for _, e := range m.pending {
			m.locks.Apply(e, now)
		}
		m.pending = nil
		m.state, m.attempt, m.connErr = connLive, 0, nil
		return m, m.pollNow()
	case sessionsListedMsg:
		var cmd tea.Cmd
		if msg.err == nil {
			m.sessionData = msg.sessions
			m.refreshRows(viewSessions)
			// Semaphores held under a session that the view has not seen.
			var unknown []string
			for _, s := range msg.sessions {
				for _, n := range s.Semaphores {
					if m.sems.Get(n) == nil {
						unknown = append(unknown, n)
					}
				}
			}
			cmd = m.readSemaphores(unknown)
		}
		return m, tea.Batch(cmd, m.listed(viewSessions, msg.err))
	case lockStatusMsg:
		m.lockReading = false
		if msg.name != m.detailName {
			if m.detailOpen && m.active == viewLocks {
				return m, m.readLockStatus(m.detailName) // the cursor moved meanwhile
			}
			return m, nil
		}
		m.lockState, m.lockStateName, m.lockStateErr = msg.state, msg.name, msg.err
		return m, nil
	case semaphoresListedMsg:
		if msg.gen != m.gen {
			return m, nil
		}
		if msg.err != nil {
			if !errors.Is(msg.err, client.ErrNotFound) { // 404: a server without the listing (events only)
				m.semErr = fmt.Errorf("list semaphores: %w", msg.err)
			}
			return m, nil
		}
		var unknown []string
		for _, n := range msg.names {
			if m.sems.Get(n) == nil {
				unknown = append(unknown, n)
			}
		}
		return m, m.readSemaphores(unknown)
	case semaphoresReadMsg:
		m.semReading, m.semErr = false, msg.err
		now := m.cfg.Now()
		for _, st := range msg.states {
			m.sems.SetStatus(st, msg.since, now)
		}
		for _, n := range msg.gone {
			m.sems.Forget(n, msg.since, now)
		}
		return m, m.readSemaphores(nil) // names wanted meanwhile
	case pollTickMsg:
		if msg.poll != m.poll || m.quitting || !m.polled() {
			return m, nil
		}
		return m, tea.Batch(m.pollNow(), m.pollTick())
	case limitsListedMsg:
		if msg.err == nil {
			m.limitData = msg.limits
			m.refreshRows(viewLimits)
		}
		return m, m.listed(viewLimits, msg.err)
	case flagsListedMsg:
		if msg.err == nil {
			m.flagData = msg.flags
			m.refreshRows(viewFlags)
		}
		return m, m.listed(viewFlags, msg.err)
	case configListedMsg:
		if msg.err == nil {
			m.configData = msg.configs
			m.refreshRows(viewConfig)
		}
		return m, m.listed(viewConfig, msg.err)

	case metricsMsg:
		next := tea.Tick(m.cfg.MetricsEvery, func(time.Time) tea.Msg { return metricsTickMsg{} })
		switch {
		case isAuthErr(msg.err):
			m.metricsNA = true // only the admin key reads /metrics
			return m, nil
		case msg.err != nil:
			m.metricsErr = msg.err
		default:
			m.metricsErr = nil
			if s, ok := parseScrape(msg.text, msg.at); ok {
				m.rates.add(s)
			}
		}
		return m, next
	case metricsTickMsg:
		if m.quitting {
			return m, nil
		}
		return m, m.scrape()

	case clusterMsg:
		switch {
		case errors.Is(msg.err, client.ErrNotFound) || isAuthErr(msg.err):
			m.clusterNA, m.clusterOK = true, false
			return m, nil
		case msg.err != nil:
			m.clusterOK = false // node unreachable: the connection state says so
		default:
			m.cluster, m.clusterOK = msg.st, true
		}
		return m, tea.Tick(m.cfg.MetricsEvery, func(time.Time) tea.Msg { return clusterTickMsg{} })
	case clusterTickMsg:
		if m.quitting {
			return m, nil
		}
		return m, m.askCluster()
	}
	return m, nil
}

// refreshRows recomputes the rows of list view v from its last listing at
// the current time, so that "resets in" and "ago" move with the clock.
func (m *Model) refreshRows(v view) {
	now := m.cfg.Now()
	switch v {
	case viewSessions:
		m.sessions.SetRows(sessionRows(m.sessionData, now))
	case viewLimits:
		m.limits.SetRows(limitRows(m.limitData, now))
	case viewFlags:
		m.flags.SetRows(flagRows(m.flagData, now))
	case viewConfig:
		m.configs.SetRows(configRows(m.configData, now))
	}
}

// events applies a batch of stream events.
func (m *Model) events(evs []client.Event) tea.Cmd {
	now := m.cfg.Now()
	var refresh [numViews]bool
	var cmds []tea.Cmd
	for _, e := range evs {
		if e.SessionID != "" {
			refresh[viewSessions] = true // a hold of one of the sessions shown
		}
		switch e.Kind {
		case "lock":
			m.ring = append(m.ring, e)
			if m.state == connSyncing {
				m.pending = append(m.pending, e)
			} else {
				m.locks.Apply(e, now)
			}
			if m.detailOpen && m.active == viewLocks && e.Name == m.detailName {
				cmds = append(cmds, m.readLockStatus(e.Name)) // the queue moved
			}
		case "semaphore":
			m.sems.Record(e)
			m.sems.Apply(e, now)
		case "session":
			refresh[viewSessions] = true
		case "limit":
			refresh[viewLimits] = true
		case "flag":
			refresh[viewFlags] = true
		case "config":
			refresh[viewConfig] = true
		}
	}
	if len(m.ring) > ringSize {
		m.ring = append(m.ring[:0:0], m.ring[len(m.ring)-ringSize:]...)
	}
	for _, v := range listViews {
		if !refresh[v] {
			continue
		}
		if v == m.active {
			cmds = append(cmds, m.list(v))
		} else {
			m.lists[v].dirty = true // listed when shown
		}
	}
	return tea.Batch(cmds...)
}

// listed records a listing's outcome and lists again if events came meanwhile.
func (m *Model) listed(v view, err error) tea.Cmd {
	st := &m.lists[v]
	st.inFlight, st.err = false, err
	if err == nil {
		st.loaded = true
	}
	if st.dirty && v == m.active {
		return m.list(v)
	}
	return nil
}

func (m *Model) key(msg tea.KeyMsg) tea.Cmd {
	// Keys typed faster than the terminal is read arrive as one message
	// with several runes ("jj", "/jo"): handle them one at a time.
	if msg.Type == tea.KeyRunes && len(msg.Runes) > 1 && !msg.Paste {
		var cmds []tea.Cmd
		for _, r := range msg.Runes {
			cmds = append(cmds, m.key(tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}, Alt: msg.Alt}))
		}
		return tea.Batch(cmds...)
	}
	if m.filtering {
		switch msg.String() {
		case "ctrl+c":
			return m.quit()
		case "enter":
			m.filtering = false
			m.input.Blur()
			return nil
		case "esc":
			m.filtering = false
			m.input.Blur()
			m.input.SetValue("")
			m.applyFilter()
			return nil
		}
		var cmd tea.Cmd
		m.input, cmd = m.input.Update(msg)
		m.applyFilter()
		return cmd
	}
	k := m.keys
	switch {
	case key.Matches(msg, k.Quit):
		return m.quit()
	case key.Matches(msg, k.Help):
		m.help.ShowAll = !m.help.ShowAll
		m.SetSize(m.width, m.height)
	case key.Matches(msg, k.Filter):
		m.filtering = true
		m.input.CursorEnd()
		return m.input.Focus()
	case key.Matches(msg, k.Back):
		if m.detailOpen {
			m.detailOpen = false
			m.SetSize(m.width, m.height)
			return m.restartPoll()
		} else if m.input.Value() != "" {
			m.input.SetValue("")
			m.applyFilter()
		}
	case key.Matches(msg, k.Up):
		return m.move(-1)
	case key.Matches(msg, k.Down):
		return m.move(1)
	case key.Matches(msg, k.PageUp):
		return m.move(-m.pageSize())
	case key.Matches(msg, k.PageDown):
		return m.move(m.pageSize())
	case key.Matches(msg, k.Detail):
		switch {
		case m.active != viewLocks && m.active != viewSemaphores:
			return nil
		case m.detailOpen:
			m.detailOpen = false
		case m.active == viewLocks && m.locks.Selected() != nil:
			m.detailOpen, m.detailName = true, m.locks.Selected().Name
		case m.active == viewSemaphores && m.sems.Selected() != nil:
			m.detailOpen, m.detailName = true, m.sems.Selected().Name
		}
		m.SetSize(m.width, m.height)
		return m.restartPoll()
	case key.Matches(msg, k.NextView):
		return m.switchView((m.active + 1) % numViews)
	case key.Matches(msg, k.PrevView):
		return m.switchView((m.active + numViews - 1) % numViews)
	case key.Matches(msg, k.Refresh):
		if m.state == connRefused {
			// Try the credentials again (the token may have been fixed server-side).
			m.state, m.connErr = connConnecting, nil
			return m.connect(m.gen)
		}
		switch m.active {
		case viewLocks:
			if m.stream == nil || m.state == connSyncing {
				return nil
			}
			m.state, m.pending = connSyncing, nil
			return tea.Batch(m.listLocks(m.gen), m.pollNow())
		case viewSemaphores:
			if m.stream == nil {
				return m.readSemaphores(m.sems.Names())
			}
			return tea.Batch(m.readSemaphores(m.sems.Names()), m.listSemaphores(m.gen))
		}
		return m.list(m.active)
	}
	return nil
}

// quit stops the program. Cancelling the context ends the event stream
// (its context derives from it) and any request in flight; Run's Close
// then waits for the stream reader.
func (m *Model) quit() tea.Cmd {
	m.quitting = true
	m.cancel()
	return tea.Quit
}

func (m *Model) pageSize() int {
	h, _ := m.layout()
	if h > 2 {
		return h - 2
	}
	return 1
}

// move moves the cursor of the current view; with the detail pane open it
// follows, and its polling restarts for the new row.
func (m *Model) move(delta int) tea.Cmd {
	switch m.active {
	case viewLocks:
		m.locks.Move(delta)
		if r := m.locks.Selected(); m.detailOpen && r != nil && r.Name != m.detailName {
			m.detailName = r.Name
			return m.restartPoll()
		}
	case viewSemaphores:
		m.sems.Move(delta)
		if r := m.sems.Selected(); m.detailOpen && r != nil {
			m.detailName = r.Name
		}
	case viewSessions:
		m.sessions.Move(delta)
	case viewLimits:
		m.limits.Move(delta)
	case viewFlags:
		m.flags.Move(delta)
	case viewConfig:
		m.configs.Move(delta)
	}
	return nil
}

func (m *Model) applyFilter() {
	f := m.input.Value()
	m.locks.SetFilter(f)
	m.sems.SetFilter(f)
	m.sessions.SetFilter(f)
	m.limits.SetFilter(f)
	m.flags.SetFilter(f)
	m.configs.SetFilter(f)
}

func (m *Model) switchView(v view) tea.Cmd {
	m.active, m.detailOpen = v, false
	m.SetSize(m.width, m.height)
	m.refreshRows(v)
	var cmd tea.Cmd
	if v != viewLocks && v != viewSemaphores && m.stream != nil && (m.lists[v].dirty || !m.lists[v].loaded) {
		cmd = m.list(v)
	}
	return tea.Batch(cmd, m.restartPoll())
}

// --- view ---

// View renders the whole screen.
func (m *Model) View() string {
	if m.quitting {
		return ""
	}
	now := m.now
	if n := m.cfg.Now(); n.After(now) {
		now = n
	}
	tableH, detailH := m.layout()
	m.locks.SetSize(m.width, tableH)
	parts := []string{m.headerView(), m.tabsView()}
	switch m.active {
	case viewLocks:
		parts = append(parts, m.locks.View(now, m.st))
	case viewSemaphores:
		parts = append(parts, m.sems.View(now, m.st, m.semStatus()))
	case viewSessions:
		parts = append(parts, m.sessions.View(m.st, m.listStatus(viewSessions)))
	case viewLimits:
		parts = append(parts, m.limits.View(m.st, m.listStatus(viewLimits)))
	case viewFlags:
		parts = append(parts, m.flags.View(m.st, m.listStatus(viewFlags)))
	case viewConfig:
		parts = append(parts, m.configs.View(m.st, m.listStatus(viewConfig)))
	}
	if detailH > 0 {
		parts = append(parts, m.detailView(now, detailH))
	}
	if m.filtering {
		parts = append(parts, m.help.View(filterKeys))
	} else {
		parts = append(parts, m.help.View(m.keys))
	}
	clipper := lipgloss.NewStyle().MaxWidth(m.width)
	lines := strings.Split(strings.Join(parts, "\n"), "\n")
	for i, l := range lines {
		lines[i] = clipper.Render(l)
	}
	if len(lines) > m.height {
		lines = lines[:m.height]
	}
	return strings.Join(lines, "\n")
}

// semStatus is what the semaphores view says while it has no rows to show
// for a reason other than there being none.
func (m *Model) semStatus() string {
	switch {
	case m.state == connRefused:
		return "the server refused the token (" + shortErr(m.connErr) + "): check --token, then press r"
	case m.semErr != nil:
		return "error: " + oneLine(m.semErr.Error())
	}
	return ""
}

func (m *Model) listStatus(v view) string {
	st := m.lists[v]
	switch {
	case m.state == connRefused && !st.loaded:
		return "the server refused the token (" + shortErr(m.connErr) + "): check --token, then press r"
	case st.err != nil && !st.loaded:
		return "error: " + oneLine(st.err.Error())
	case !st.loaded:
		return "loading…"
	}
	return ""
}

// headerView: title, server, connection state; ops/s and p99 on the right.
// The connection state is never cut: the server URL gives way first.
func (m *Model) headerView() string {
	conn := m.connView()
	if m.clusterOK {
		leader := m.cluster.Leader
		if leader == "" {
			leader = "none"
		}
		// Names from the server never drive the terminal (oneLine).
		conn += "  " + m.st.server.Render("node "+oneLine(m.cluster.Node)+" · leader "+oneLine(leader))
	}
	server := clip(m.cfg.Server, m.width-lipgloss.Width("octostore")-4-lipgloss.Width(conn))
	left := m.st.title.Render("octostore") + "  " + m.st.server.Render(server) + "  " + conn
	right := "ops/s n/a  p99 n/a"
	switch {
	case m.metricsNA:
	case m.metricsErr != nil && m.rates.samples == 0:
		right = "metrics: unavailable"
	case m.rates.samples == 0:
		right = "ops/s …  p99 …"
	default:
		right = "ops/s " + fmtRate(m.rates.ops[len(m.rates.ops)-1]) + " " + sparkline(m.rates.ops) +
			"  p99 " + fmtLatency(m.rates.p99)
	}
	gap := m.width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 2 {
		// Too narrow for both: the connection state matters more.
		return left
	}
	return left + strings.Repeat(" ", gap) + right
}

func (m *Model) connView() string {
	switch m.state {
	case connConnecting:
		if m.attempt > 0 {
			return m.st.waiting.Render(fmt.Sprintf("◌ reconnecting (attempt %d)…", m.attempt+1))
		}
		return m.st.waiting.Render("◌ connecting…")
	case connSyncing:
		return m.st.waiting.Render("◌ syncing…")
	case connLive:
		return m.st.live.Render("● live")
	case connRefused:
		if errors.Is(m.connErr, client.ErrRevoked) {
			return m.st.down.Render(revokedText)
		}
		return m.st.down.Render(refusedText)
	}
	wait := m.retryAt.Sub(m.cfg.Now()).Round(100 * time.Millisecond)
	if wait < 0 {
		wait = 0
	}
	if errors.Is(m.connErr, client.ErrLagged) {
		return m.st.waiting.Render(fmt.Sprintf("○ fell behind, resync in %s", wait))
	}
	s := fmt.Sprintf("○ offline, retry in %s", wait)
	if m.connErr != nil {
		s += ": " + shortErr(m.connErr)
	}
	return m.st.down.Render(s)
}

// isAuthErr reports a 401 or 403 answer.
func isAuthErr(err error) bool {
	if errors.Is(err, client.ErrUnauthorized) || errors.Is(err, client.ErrForbidden) {
		return true
	}
	var ae *client.APIError
	return errors.As(err, &ae) && (ae.Status == 401 || ae.Status == 403)
}

// shortErr keeps the end of an error message, the informative part.
func shortErr(err error) string {
	s := oneLine(err.Error())
	s = strings.TrimPrefix(s, "octostore: ")
	if i := strings.LastIndex(s, ": "); i >= 0 && len(s)-i > 8 {
		s = s[i+2:]
	}
	return clip(s, 32)
}

func (m *Model) tabsView() string {
	filter := ""
	switch {
	case m.filtering:
		filter = m.input.View()
	case m.input.Value() != "":
		filter = m.st.faint.Render("filter /" + m.input.Value())
	}
	// The widest layout that fits: wide separators, narrow ones, then
	// short names (six tabs, their counts and a filter in 80 columns).
	var line string
	for _, f := range []struct {
		sep, gap string
		names    [numViews]string
	}{
		{"  │  ", "    ", viewNames},
		{" │ ", "  ", viewNames},
		{" │ ", "  ", shortViewNames},
	} {
		line = " " + strings.Join(m.tabs(f.names), f.sep)
		if filter != "" {
			line += f.gap + filter
		}
		if lipgloss.Width(line) <= m.width {
			break
		}
	}
	return line
}

// shortViewNames are the tab names when the full ones do not fit.
var shortViewNames = [numViews]string{"Locks", "Sems", "Sess", "Limits", "Flags", "Config"}

// tabs renders the tabs with their counts.
func (m *Model) tabs(names [numViews]string) []string {
	var tabs []string
	for v := view(0); v < numViews; v++ {
		name := names[v]
		switch v {
		case viewLocks:
			name += fmt.Sprintf(" %d", m.locks.Total())
		case viewSemaphores:
			name += fmt.Sprintf(" %d", m.sems.Total())
		case viewSessions:
			name += countLabel(m.sessions.rows, m.lists[v].loaded)
		case viewLimits:
			name += countLabel(m.limits.rows, m.lists[v].loaded)
		case viewFlags:
			name += countLabel(m.flags.rows, m.lists[v].loaded)
		case viewConfig:
			name += countLabel(m.configs.rows, m.lists[v].loaded)
		}
		if v == m.active {
			tabs = append(tabs, m.st.tabActive.Render(name))
		} else {
			tabs = append(tabs, m.st.tabInactive.Render(name))
		}
	}
	return tabs
}

func countLabel(rows []listRow, loaded bool) string {
	if !loaded {
		return ""
	}
	return fmt.Sprintf(" %d", len(rows))
}

// detailView: the selected lock or semaphore and its recent events,
// newest first.
func (m *Model) detailView(now time.Time, h int) string {
	if m.active == viewSemaphores {
		return m.semDetailView(now, h)
	}
	w := m.width
	name := m.detailName
	lines := []string{m.st.rule.Render(strings.Repeat("─", w))}
	title := name + "  "
	r := m.locks.Get(name)
	switch {
	case r != nil && r.Delayed:
		title += fmt.Sprintf("in lock-delay: %s's hold expired %s · free at %s (in %s) · token %d", r.Holder,
			r.ExpiresAt.Local().Format("15:04:05"), r.AvailableAt.Local().Format("15:04:05"),
			shortDur(r.AvailableAt.Sub(now)), r.Token)
	case r != nil:
		title += fmt.Sprintf("held by %s · token %d · expires %s (in %s)", r.Holder, r.Token,
			r.ExpiresAt.Local().Format("15:04:05"), shortDur(r.ExpiresAt.Sub(now)))
		if r.LeaseID != "" {
			title += " · lease " + r.LeaseID
		}
	default:
		title += "not held"
	}
	lines = append(lines, m.st.detailTitle.Render(clip(title, w)))
	lines = append(lines, clip(m.lockStatusLine(r), w))
	n := 0
	for i := len(m.ring) - 1; i >= 0 && len(lines) < h; i-- {
		e := m.ring[i]
		if e.Name != name {
			continue
		}
		n++
		t := e.Time
		if t.IsZero() {
			t = now
		}
		line := fmt.Sprintf("  %s  %-13s %-12s token %d", t.Local().Format("15:04:05.000"), e.Type, e.Holder, e.FencingToken)
		switch {
		case !e.ExpiresAt.IsZero() && (e.Type == client.EventLockAcquired || e.Type == client.EventLockRenewed):
			line += "  until " + e.ExpiresAt.Local().Format("15:04:05")
		case !e.AvailableAt.IsZero():
			line += "  free at " + e.AvailableAt.Local().Format("15:04:05")
		}
		lines = append(lines, clip(line, w))
	}
	if n == 0 && len(lines) < h {
		lines = append(lines, m.st.faint.Render("  no events for this lock since the view started"))
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}

// lockStatusLine is the detail pane's second line: what GET /locks/{name}
// says beyond the table (the waiters queued, the hold's session), and the
// hold's metadata.
func (m *Model) lockStatusLine(r *lockRow) string {
	var parts []string
	st := m.lockState
	if m.lockStateName != m.detailName {
		st = nil
	}
	switch {
	case st != nil && (st.Status == "held" || st.Status == "delayed"):
		parts = append(parts, fmt.Sprintf("waiters %d", st.Waiters))
	case st != nil:
		parts = append(parts, "available")
	case m.lockStateErr != nil && m.lockStateName == m.detailName:
		parts = append(parts, "status: "+shortErr(m.lockStateErr))
	default:
		parts = append(parts, "waiters …")
	}
	meta := ""
	if r != nil {
		meta = r.Metadata
		if r.SessionID != "" {
			parts = append(parts, "session "+shortID(r.SessionID))
		}
	}
	if meta == "" && st != nil {
		meta = oneLine(st.Metadata)
	}
	if meta != "" {
		parts = append(parts, "metadata: "+meta)
	}
	return "  " + strings.Join(parts, " · ")
}

// semDetailView: the selected semaphore's slots (grant order) and its
// recent events, newest first.
func (m *Model) semDetailView(now time.Time, h int) string {
	w := m.width
	name := m.detailName
	lines := []string{m.st.rule.Render(strings.Repeat("─", w))}
	r := m.sems.Get(name)
	title := name + "  "
	if r == nil {
		title += "nothing held"
	} else {
		limit := "?"
		if r.Limit > 0 {
			limit = fmt.Sprint(r.Limit)
		}
		title += fmt.Sprintf("limit %s · %d held", limit, len(r.Slots))
		if r.Waiters >= 0 {
			title += fmt.Sprintf(" · %d waiting", r.Waiters)
		}
	}
	lines = append(lines, m.st.detailTitle.Render(clip(title, w)))
	if r != nil {
		for _, sl := range r.sorted() {
			if len(lines) >= h {
				break
			}
			line := fmt.Sprintf("  token %-5d %-12s expires in %-6s", sl.Token, sl.Holder, shortDur(sl.ExpiresAt.Sub(now)))
			if sl.SessionID != "" {
				line += " session " + shortID(sl.SessionID)
			}
			if sl.LeaseID != "" {
				line += " lease " + shortID(sl.LeaseID)
			}
			if sl.Metadata != "" {
				line += "  " + sl.Metadata
			}
			lines = append(lines, clip(line, w))
		}
	}
	for _, e := range m.sems.Events(name, h) {
		if len(lines) >= h {
			break
		}
		t := e.Time
		if t.IsZero() {
			t = now
		}
		lines = append(lines, m.st.faint.Render(clip(fmt.Sprintf("  %s  %-18s %-12s token %d", t.Local().Format("15:04:05.000"),
			e.Type, e.Holder, e.FencingToken), w)))
	}
	for len(lines) < h {
		lines = append(lines, "")
	}
	return strings.Join(lines, "\n")
}
