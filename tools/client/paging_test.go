package client

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// The List… methods follow the cursors: with pages of 2, five items come
// back whole and in order.
func TestListFollowsCursors(t *testing.T) {
	defer func(n int) { listAllPage = n }(listAllPage)
	listAllPage = 2
	_, alice, _ := fake(t)
	ctx := context.Background()
	for i := range 5 {
		if _, err := alice.Acquire(ctx, fmt.Sprintf("l%d", 4-i), time.Minute); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.CheckLimit(ctx, fmt.Sprintf("r%d", i), 10, time.Minute); err != nil {
			t.Fatal(err)
		}
	}
	locks, err := alice.ListLocks(ctx)
	if err != nil || len(locks) != 5 || locks[0].Name != "l0" || locks[4].Name != "l4" {
		t.Fatalf("ListLocks = %+v %v", locks, err)
	}
	limits, err := alice.ListLimits(ctx)
	if err != nil || len(limits) != 5 || limits[0].Name != "r0" || limits[4].Name != "r4" {
		t.Fatalf("ListLimits = %+v %v", limits, err)
	}
}
