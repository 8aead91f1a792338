package realtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// Listings page the same on the server and the fake: the List…Page
// methods give at most Limit items, the total and a cursor while items
// remain; following the cursors gives what List… gives; a bad limit is
// ErrInvalid.
func TestContractListingPages(t *testing.T) {
	each(t, func(t *testing.T, url string) {
		alice, _ := clients(t, url)
		ctx := context.Background()
		for i := range 7 {
			n := fmt.Sprintf("page-%d", (i*3)%7)
			if _, err := alice.Acquire(ctx, n, time.Minute); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.SetFlag(ctx, n, client.FlagSpec{Enabled: true}); err != nil {
				t.Fatal(err)
			}
		}
		var walked []string
		o := client.ListOptions{Limit: 3}
		for pages := 0; ; pages++ {
			pg, err := alice.ListLocksPage(ctx, o)
			if err != nil || pg.Total != 7 || len(pg.Items) > 3 || pages > 3 {
				t.Fatalf("page %d: %+v %v", pages, pg, err)
			}
			for _, l := range pg.Items {
				walked = append(walked, l.Name)
			}
			if pg.NextCursor == "" {
				break
			}
			o.Cursor = pg.NextCursor
		}
		all, err := alice.ListLocks(ctx)
		if err != nil || len(all) != 7 || fmt.Sprint(walked) != fmt.Sprint(lockNames(all)) {
			t.Fatalf("pages %v, ListLocks %v %v", walked, lockNames(all), err)
		}
		if walked[0] != "page-0" || walked[6] != "page-6" {
			t.Fatalf("not by name: %v", walked)
		}
		fp, err := alice.ListFlagsPage(ctx, client.ListOptions{Limit: 5})
		if err != nil || len(fp.Items) != 5 || fp.Total != 7 || fp.NextCursor == "" {
			t.Fatalf("flags page: %+v %v", fp, err)
		}
		last, err := alice.ListFlagsPage(ctx, client.ListOptions{Limit: 5, Cursor: fp.NextCursor})
		if err != nil || len(last.Items) != 2 || last.NextCursor != "" || last.Items[1].Name != "page-6" {
			t.Fatalf("last flags page: %+v %v", last, err)
		}
		if _, err := alice.ListConfigPage(ctx, client.ListOptions{Limit: client.MaxListPage + 1}); !errors.Is(err, client.ErrValidation) {
			t.Fatalf("limit beyond the maximum: %v", err)
		}
	})
}

func lockNames(ls []client.LockInfo) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		out[i] = l.Name
	}
	return out
}
