package controller

import (
	"fmt"
	"testing"
	"time"
)

// TestRefreshAfter: each device refreshes its stored last-seen time at an
// offset of its own in [lastSeenRefresh/2, lastSeenRefresh), so that a
// fleet that came online together spreads its writes over half an hour.
func TestRefreshAfter(t *testing.T) {
	const n = 10000
	buckets := map[time.Duration]int{}
	for i := range n {
		d := refreshAfter(fmt.Sprintf("dev-%05d", i))
		if d < lastSeenRefresh/2 || d >= lastSeenRefresh {
			t.Fatalf("refreshAfter(dev-%05d) = %v, outside [%v, %v)", i, d, lastSeenRefresh/2, lastSeenRefresh)
		}
		buckets[d/time.Minute]++
	}
	// 30 one-minute buckets of about 333 devices each: none empty, none
	// holding more than twice its share.
	for m := lastSeenRefresh / 2 / time.Minute; m < lastSeenRefresh/time.Minute; m++ {
		if c := buckets[m]; c == 0 || c > 2*n/30 {
			t.Errorf("minute %d holds %d of %d devices' refreshes", m, c, n)
		}
	}
}
