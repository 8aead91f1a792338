package realtest

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/octostore/octostore/tools/client"
)

// ListSemaphores and ListSemaphoresPage against the real server (the fake
// has no semaphores), every exchange through the contract checker: the
// caller's slots by semaphore name, then lease, page after page, the same
// as ListSemaphores; bob's slot is not alice's to see, the admin key sees
// both; a session slot carries its session; a bad limit is ErrValidation.
func TestClientSemaphoreListing(t *testing.T) {
	url := implementations[0].start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	alice, bob := clients(t, url)
	admin := newClient(t, url, adminKey)
	leases := map[string]*client.Lease{}
	for i := range 5 {
		l, err := alice.AcquireSemaphore(ctx, fmt.Sprintf("sem-%d", (i*2)%5), 3, time.Minute, client.AcquireOptions{HolderID: fmt.Sprint("w", i)})
		if err != nil {
			t.Fatal(err)
		}
		leases[l.LeaseID] = l
	}
	sess, err := alice.CreateSession(ctx, time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	sl, err := alice.AcquireSemaphore(ctx, "sem-9", 2, 0, client.AcquireOptions{SessionID: sess.SessionID})
	if err != nil {
		t.Fatal(err)
	}
	leases[sl.LeaseID] = sl
	if _, err := bob.AcquireSemaphore(ctx, "sem-1", 3, time.Minute, client.AcquireOptions{}); err != nil {
		t.Fatal(err)
	}

	var walked []client.HeldSemaphore
	o := client.ListOptions{Limit: 2}
	for pages := 0; ; pages++ {
		pg, err := alice.ListSemaphoresPage(ctx, o)
		if err != nil || pg.Total != 6 || len(pg.Items) > 2 || pages > 3 {
			t.Fatalf("page %d: %+v %v", pages, pg, err)
		}
		walked = append(walked, pg.Items...)
		if pg.NextCursor == "" {
			break
		}
		o.Cursor = pg.NextCursor
	}
	all, err := alice.ListSemaphores(ctx)
	if err != nil || fmt.Sprint(all) != fmt.Sprint(walked) || len(all) != 6 {
		t.Fatalf("ListSemaphores = %+v %v, pages %+v", all, err, walked)
	}
	for i, h := range all {
		want := fmt.Sprint("sem-", i)
		if i == 5 {
			want = "sem-9"
		}
		l := leases[h.LeaseID]
		if h.Name != want || h.Holder != "alice" || l == nil || h.FencingToken != l.FencingToken || h.Limit != l.Limit {
			t.Fatalf("slot %d: %+v (grant %+v)", i, h, l)
		}
		if (h.SessionID != "") != (i == 5) || i == 5 && (h.SessionID != sess.SessionID || h.Limit != 2) {
			t.Fatalf("slot %d: session %q", i, h.SessionID)
		}
	}
	if mine, err := bob.ListSemaphores(ctx); err != nil || len(mine) != 1 || mine[0].Holder != "bob" || mine[0].Name != "sem-1" {
		t.Fatalf("bob's slots: %+v %v", mine, err)
	}
	if every, err := admin.ListSemaphores(ctx); err != nil || len(every) != 7 || every[1].Name != "sem-1" || every[2].Name != "sem-1" {
		t.Fatalf("the admin's listing: %+v %v", every, err)
	}
	if _, err := alice.ListSemaphoresPage(ctx, client.ListOptions{Limit: client.MaxListPage + 1}); !errors.Is(err, client.ErrValidation) {
		t.Fatalf("limit beyond the maximum: %v", err)
	}
	if _, err := alice.ListSemaphoresPage(ctx, client.ListOptions{Cursor: "not-a-cursor!"}); !errors.Is(err, client.ErrValidation) {
		t.Fatalf("a bad cursor: %v", err)
	}
}
