package tui

import "github.com/charmbracelet/bubbles/key"

// keyMap is every key binding; it implements help.KeyMap.
type keyMap struct {
	Up, Down, PageUp, PageDown key.Binding
	Filter, Back, Detail       key.Binding
	NextView, PrevView         key.Binding
	Refresh, Help, Quit        key.Binding
}

func defaultKeyMap() keyMap {
	return keyMap{
		Up:       key.NewBinding(key.WithKeys("up", "k"), key.WithHelp("↑/k", "up")),
		Down:     key.NewBinding(key.WithKeys("down", "j"), key.WithHelp("↓/j", "down")),
		PageUp:   key.NewBinding(key.WithKeys("pgup"), key.WithHelp("pgup", "page up")),
		PageDown: key.NewBinding(key.WithKeys("pgdown"), key.WithHelp("pgdn", "page down")),
		Filter:   key.NewBinding(key.WithKeys("/"), key.WithHelp("/", "filter")),
		Back:     key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "close details / clear filter")),
		Detail:   key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "details")),
		NextView: key.NewBinding(key.WithKeys("tab"), key.WithHelp("tab", "next view")),
		PrevView: key.NewBinding(key.WithKeys("shift+tab"), key.WithHelp("shift+tab", "previous view")),
		Refresh:  key.NewBinding(key.WithKeys("r"), key.WithHelp("r", "refresh")),
		Help:     key.NewBinding(key.WithKeys("?"), key.WithHelp("?", "help")),
		Quit:     key.NewBinding(key.WithKeys("q", "ctrl+c"), key.WithHelp("q", "quit")),
	}
}

// ShortHelp implements help.KeyMap.
func (k keyMap) ShortHelp() []key.Binding {
	return []key.Binding{k.Up, k.Down, k.Filter, k.Detail, k.NextView, k.Help, k.Quit}
}

// FullHelp implements help.KeyMap.
func (k keyMap) FullHelp() [][]key.Binding {
	return [][]key.Binding{
		{k.Up, k.Down, k.PageUp, k.PageDown},
		{k.Filter, k.Back, k.Detail},
		{k.NextView, k.PrevView, k.Refresh},
		{k.Help, k.Quit},
	}
}

// filterKeyMap is the help while typing a filter.
type filterKeyMap struct{ apply, cancel key.Binding }

func (f filterKeyMap) ShortHelp() []key.Binding  { return []key.Binding{f.apply, f.cancel} }
func (f filterKeyMap) FullHelp() [][]key.Binding { return [][]key.Binding{f.ShortHelp()} }

var filterKeys = filterKeyMap{
	apply:  key.NewBinding(key.WithKeys("enter"), key.WithHelp("enter", "keep filter")),
	cancel: key.NewBinding(key.WithKeys("esc"), key.WithHelp("esc", "clear filter")),
}
