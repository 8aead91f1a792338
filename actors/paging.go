package actors

import "fmt"

// Listings are paged (issue 18): every listing is ordered by a key, and a
// page is the items after a position in that order, at most a number of
// them, with the count of the whole listing. No listing holds more than
// one page in memory: the stores read Limit+1 rows from the position on
// (keyset pagination), the lock index walks its sorted names.

// PageQuery selects one page of a listing: the items after the position
// (AfterOwner, AfterName) in the listing's order, at most Limit of them.
//
// Owner-scoped listings (limits, flags, config keys) are ordered by owner
// (user id), then name; a listing of one owner's items reads only
// AfterName. Locks are one namespace, ordered by name (AfterOwner is not
// read). The zero position ("", "") is the start.
type PageQuery struct {
	AfterOwner, AfterName string
	Limit                 int // at least 1
}

// Page is one page of a listing.
type Page[T any] struct {
	Items []T
	Total int  // items in the whole listing at the time of the page
	More  bool // items remain after this page
}

// after reports whether (owner, name) comes after q's position in the
// order of an owner-scoped listing of every owner (single: of one owner's,
// where only the name counts).
func (q PageQuery) after(owner, name string, single bool) bool {
	if single || owner == q.AfterOwner {
		return name > q.AfterName
	}
	return owner > q.AfterOwner
}

// AllPages walks a paged listing from its start in pages of limit items
// and returns every item (for tools and tests: the API serves one page at
// a time). pos is an item's position; list is called with the position of
// the last item of the previous page. It fails if list does, or if the
// listing does not move forward (a page that is empty while More, or an
// item not after the one before it).
func AllPages[T any](limit int, list func(PageQuery) (Page[T], error), pos func(*T) (owner, name string)) ([]T, error) {
	var all []T
	q := PageQuery{Limit: limit}
	for {
		pg, err := list(q)
		if err != nil {
			return all, err
		}
		for i := range pg.Items {
			o, n := pos(&pg.Items[i])
			if (len(all) > 0 || i > 0) && (o < q.AfterOwner || o == q.AfterOwner && n <= q.AfterName) {
				return all, fmt.Errorf("listing out of order: (%q, %q) after (%q, %q)", o, n, q.AfterOwner, q.AfterName)
			}
			q.AfterOwner, q.AfterName = o, n
		}
		all = append(all, pg.Items...)
		if !pg.More {
			return all, nil
		}
		if len(pg.Items) == 0 {
			return all, fmt.Errorf("listing does not move forward: an empty page with more after it")
		}
	}
}
