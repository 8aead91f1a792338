package httpd

import (
	"encoding/base64"
	"strconv"
	"strings"

	"github.com/octostore/octostore/actors"
	"github.com/valyala/fasthttp"
)

// Listing pages (issue 18). GET /locks, /semaphores, /sessions, /limits,
// /flags, /config and /admin/tokens answer one page: at most ?limit= items
// (default DefaultListLimit, at most MaxListLimit; anything else is 422),
// from where ?cursor= says (the next_cursor of the previous page; a cursor
// this server did not give is 422), with "total", the count of the whole
// listing, and "next_cursor" while items remain after the page. A page is
// read as one page (the stores read from the position on, the lock and
// semaphore slot indexes walk their names): no listing holds more than one
// page, and the page's memory is taken from the answer budget
// (--max-answer-memory) before it is read.
//
// Order: locks by name; semaphore slots by semaphore name, then lease id
// (the cursor's name is "semaphore/lease"); an owner's limits, flags and
// config keys by name; the admin key's listing of every owner by owner
// (user id), then name. A listing is not a snapshot across pages: an item
// created or deleted between two pages is listed or not depending on where
// it falls, but no item that exists throughout is skipped or listed twice.
const (
	DefaultListLimit = 1000
	MaxListLimit     = 10000
)

var (
	errListLimit  = invalid("limit must be an integer from 1 to " + strconv.Itoa(MaxListLimit))
	errListCursor = invalid("cursor is not one this server gave (take next_cursor from the previous page)")
)

// listQuery parses ?limit= and ?cursor=.
func listQuery(ctx *fasthttp.RequestCtx) (actors.PageQuery, error) {
	q := ctx.QueryArgs()
	pq := actors.PageQuery{Limit: DefaultListLimit}
	if q.Has("limit") {
		n, err := strconv.Atoi(string(q.Peek("limit")))
		if err != nil || n < 1 || n > MaxListLimit {
			return pq, errListLimit
		}
		pq.Limit = n
	}
	if q.Has("cursor") {
		owner, name, ok := parseListCursor(q.Peek("cursor"))
		if !ok {
			return pq, errListCursor
		}
		pq.AfterOwner, pq.AfterName = owner, name
	}
	return pq, nil
}

// The cursor is opaque to clients: "p", the owner (user id; empty in a
// listing of one owner's items, whose order does not need it), a newline
// and the name of the page's last item, base64url-encoded without padding.
func listCursor(owner, name string) string {
	return base64.RawURLEncoding.EncodeToString([]byte("p" + owner + "\n" + name))
}

func parseListCursor(c []byte) (owner, name string, ok bool) {
	if len(c) > 512 {
		return "", "", false
	}
	b, err := base64.RawURLEncoding.DecodeString(string(c))
	if err != nil || len(b) < 3 || b[0] != 'p' {
		return "", "", false
	}
	owner, name, ok = strings.Cut(string(b[1:]), "\n")
	if !ok || name == "" || !printable(owner) || !printable(name) {
		return "", "", false
	}
	return owner, name, true
}

// printable: ASCII without controls, spaces or newlines.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// writePage answers one page of a listing: {"<key>":[…],"total":N,
// "next_cursor":"…"} (next_cursor while items remain), each item rendered
// by item; pos is an item's position (owner, name), withOwner whether
// cursors carry the owner (a listing of every owner's items).
func writePage[T any](ctx *fasthttp.RequestCtx, key string, pg actors.Page[T], itemSize int, withOwner bool,
	pos func(*T) (owner, name string), item func(b []byte, it *T) []byte) error {
	b := appendList(make([]byte, 0, 64+len(pg.Items)*itemSize), key, pg.Items, item)
	b = append(b, `,"total":`...)
	b = strconv.AppendInt(b, int64(pg.Total), 10)
	if pg.More && len(pg.Items) > 0 {
		owner, name := pos(&pg.Items[len(pg.Items)-1])
		if !withOwner {
			owner = ""
		}
		b = append(b, `,"next_cursor":`...)
		b = appendString(b, listCursor(owner, name))
	}
	return writeOK(ctx, append(b, '}'))
}

// pageBudget takes a page's memory (its limit times an item's estimated
// size) from the answer budget; give it back with s.answers.release.
func (s *Server) pageBudget(q actors.PageQuery, itemSize int) (int64, error) {
	n := int64(q.Limit) * int64(itemSize)
	if !s.answers.reserve(n) {
		return 0, errAnswerBudget
	}
	return n, nil
}
