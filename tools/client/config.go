package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// ConfigEntry is a config key at one version. Value is the stored JSON
// (absent in ListConfig). Owner is set for admin listings.
type ConfigEntry struct {
	Key         string          `json:"key"`
	Value       json.RawMessage `json:"value,omitempty"`
	Description string          `json:"description,omitempty"`
	Version     int64           `json:"version"`
	CreatedAt   time.Time       `json:"created_at,omitzero"`
	UpdatedAt   time.Time       `json:"updated_at,omitzero"`
	Owner       string          `json:"owner,omitempty"`
}

// ConfigVersion is one entry of ConfigHistory.
type ConfigVersion struct {
	Version     int64           `json:"version"`
	Value       json.RawMessage `json:"value"`
	Description string          `json:"description,omitempty"`
	CreatedAt   time.Time       `json:"created_at,omitzero"`
}

// ConfigWrite is the body of SetConfig.
type ConfigWrite struct {
	// Value is any JSON-encodable value; a json.RawMessage is sent as is.
	Value any `json:"value"`
	// Description is optional.
	Description string `json:"description,omitempty"`
	// ExpectedVersion, when set, makes the write conditional: it fails with a
	// *ConflictError (ErrConflict) unless the key is at that version now.
	// new(int64(0)) means "create only".
	ExpectedVersion *int64 `json:"expected_version,omitempty"`
}

// SetConfig writes a new version of key. Not retried after it may have been
// sent unless ExpectedVersion is set (then a replay can only conflict).
func (c *Client) SetConfig(ctx context.Context, key string, w ConfigWrite) (*ConfigEntry, error) {
	if err := checkName("config key", key); err != nil {
		return nil, err
	}
	if w.Value == nil {
		w.Value = json.RawMessage("null")
	}
	e := new(ConfigEntry)
	if err := c.call(ctx, "PUT", c.owned("/config/"+seg(key)), w, w.ExpectedVersion != nil, e); err != nil {
		return nil, err
	}
	return e, nil
}

// GetConfig returns the current version of key.
func (c *Client) GetConfig(ctx context.Context, key string) (*ConfigEntry, error) {
	return c.GetConfigVersion(ctx, key, 0)
}

// GetConfigVersion returns version n of key (0: the current one).
func (c *Client) GetConfigVersion(ctx context.Context, key string, n int64) (*ConfigEntry, error) {
	if err := checkName("config key", key); err != nil {
		return nil, err
	}
	path := "/config/" + seg(key)
	if n > 0 {
		path += "?version=" + strconv.FormatInt(n, 10)
	}
	return getJSON[ConfigEntry](ctx, c, c.owned(path))
}

// HistoryPage is one page of a config key's history (ConfigHistoryPage).
type HistoryPage struct {
	Versions []ConfigVersion `json:"versions"` // newest first
	// NextCursor continues with the older versions; "" on the last page.
	NextCursor string `json:"next_cursor,omitempty"`
}

// MaxHistoryPage is the largest page the server gives (ConfigHistoryPage's
// limit); it gives 10 versions a page by default.
const MaxHistoryPage = 100

// ConfigHistoryPage reads one page of key's history, newest first: at most
// limit versions (0: the server's default, 10; at most MaxHistoryPage),
// starting where cursor says ("": from the newest; else the NextCursor of
// the previous page).
func (c *Client) ConfigHistoryPage(ctx context.Context, key, cursor string, limit int) (*HistoryPage, error) {
	if err := checkName("config key", key); err != nil {
		return nil, err
	}
	q := url.Values{}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if cursor != "" {
		q.Set("cursor", cursor)
	}
	path := "/config/" + seg(key) + "/history"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return getJSON[HistoryPage](ctx, c, c.owned(path))
}

// ConfigHistory lists every kept version of key, newest first, following
// the pages (MaxHistoryPage versions each). A server that repeats a cursor
// is an error, not a loop.
func (c *Client) ConfigHistory(ctx context.Context, key string) ([]ConfigVersion, error) {
	var all []ConfigVersion
	seen := map[string]bool{}
	cursor := ""
	for {
		p, err := c.ConfigHistoryPage(ctx, key, cursor, MaxHistoryPage)
		if err != nil {
			return nil, err
		}
		all = append(all, p.Versions...)
		if p.NextCursor == "" {
			return all, nil
		}
		if seen[p.NextCursor] {
			return nil, fmt.Errorf("octostore: config history of %s: the server repeated a cursor", key)
		}
		seen[p.NextCursor] = true
		cursor = p.NextCursor
	}
}

// RollbackConfig writes a new version of key whose value and description
// are version n's (ErrNotFound for a version no longer kept). expected, when
// set, makes it conditional as ConfigWrite.ExpectedVersion does. Not
// retried after it may have been sent unless expected is set.
func (c *Client) RollbackConfig(ctx context.Context, key string, n int64, expected *int64) (*ConfigEntry, error) {
	if err := checkName("config key", key); err != nil {
		return nil, err
	}
	body := struct {
		Version         int64  `json:"version"`
		ExpectedVersion *int64 `json:"expected_version,omitempty"`
	}{n, expected}
	e := new(ConfigEntry)
	if err := c.call(ctx, "POST", c.owned("/config/"+seg(key)+"/rollback"), body, expected != nil, e); err != nil {
		return nil, err
	}
	return e, nil
}

// DeleteConfig deletes key and its history.
func (c *Client) DeleteConfig(ctx context.Context, key string) error {
	return c.deleteNamed(ctx, "config key", "/config/", key)
}

// ListConfig lists the caller's keys without values (every user's for an admin).
func (c *Client) ListConfig(ctx context.Context) ([]ConfigEntry, error) {
	return listAll[ConfigEntry](ctx, c, c.owned("/config"), "configs")
}

// ListConfigPage reads one page of the caller's keys without values (every user's for an
// admin: by owner, then name), by name.
func (c *Client) ListConfigPage(ctx context.Context, o ListOptions) (*Page[ConfigEntry], error) {
	return listPage[ConfigEntry](ctx, c, c.owned("/config"), "configs", o)
}
