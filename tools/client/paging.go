package client

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Listings are paged (docs/api.md, "Listings"): the server answers at most
// a page of items, the count of the whole listing, and a cursor while items
// remain. The List… methods follow the cursors and return every item; the
// List…Page methods read one page.

// MaxListPage is the largest page a listing gives (ListOptions.Limit); by
// default it gives DefaultListPage items a page.
const (
	MaxListPage     = 10000
	DefaultListPage = 1000
)

// ListOptions selects one page of a listing.
type ListOptions struct {
	// Limit is the most items in the page: 0 for the server's default
	// (DefaultListPage), at most MaxListPage (more is ErrValidation from the
	// server).
	Limit int
	// Cursor is where the page starts: the NextCursor of the previous page
	// of the same listing; "" for the first page.
	Cursor string
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T
	// Total is the number of items in the whole listing (every page) when
	// the page was read.
	Total int
	// NextCursor continues the listing (ListOptions.Cursor); "" on the last
	// page.
	NextCursor string
}

// listPage reads one page of the listing at path: {"<key>":[…],"total":N,
// "next_cursor":"…"}.
func listPage[T any](ctx context.Context, c *Client, path, key string, o ListOptions) (*Page[T], error) {
	q := url.Values{}
	if o.Limit > 0 {
		q.Set("limit", strconv.Itoa(o.Limit))
	}
	if o.Cursor != "" {
		q.Set("cursor", o.Cursor)
	}
	if len(q) > 0 {
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		path += sep + q.Encode()
	}
	var out map[string]json.RawMessage
	if err := c.getJSON(ctx, path, &out); err != nil {
		return nil, err
	}
	pg := &Page[T]{}
	if raw := out[key]; raw != nil {
		if err := json.Unmarshal(raw, &pg.Items); err != nil {
			return nil, fmt.Errorf("octostore: decode GET %s response: %w", path, err)
		}
	}
	if raw := out["total"]; raw != nil {
		if err := json.Unmarshal(raw, &pg.Total); err != nil {
			return nil, fmt.Errorf("octostore: decode GET %s response: total: %w", path, err)
		}
	}
	if raw := out["next_cursor"]; raw != nil {
		if err := json.Unmarshal(raw, &pg.NextCursor); err != nil {
			return nil, fmt.Errorf("octostore: decode GET %s response: next_cursor: %w", path, err)
		}
	}
	return pg, nil
}

// listAllPage is the page size listAll asks for (tests make it small).
var listAllPage = MaxListPage

// listAll follows a listing's cursors, listAllPage items a page, and
// returns every item. A server that repeats a cursor, or gives an empty
// page with a cursor, is an error, not a loop.
func listAll[T any](ctx context.Context, c *Client, path, key string) ([]T, error) {
	var all []T
	seen := map[string]bool{}
	o := ListOptions{Limit: listAllPage}
	for {
		pg, err := listPage[T](ctx, c, path, key, o)
		if err != nil {
			return nil, err
		}
		all = append(all, pg.Items...)
		if pg.NextCursor == "" {
			return all, nil
		}
		if seen[pg.NextCursor] || len(pg.Items) == 0 {
			return nil, fmt.Errorf("octostore: listing %s: the server's pages do not move forward", path)
		}
		seen[pg.NextCursor] = true
		o.Cursor = pg.NextCursor
	}
}
