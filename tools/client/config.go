package client

import (
	"context"
	"encoding/json"
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

// ConfigHistory lists the versions of key.
func (c *Client) ConfigHistory(ctx context.Context, key string) ([]ConfigVersion, error) {
	if err := checkName("config key", key); err != nil {
		return nil, err
	}
	return listOf[ConfigVersion](ctx, c, c.owned("/config/"+seg(key)+"/history"), "versions")
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
	return listOf[ConfigEntry](ctx, c, c.owned("/config"), "configs")
}
