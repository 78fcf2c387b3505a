package shipper

import (
	"context"
	"sync"
	"time"
)

// scanCache lets destinations that export the same unit (a client's bucket
// and its share of the backup) share pass 1: the unit is scanned once for
// every (site, hour), and each destination keeps the groups of the sites it
// claims. It holds the last few units' scans, 4 bytes per record each.
type scanCache struct {
	mu    sync.Mutex
	scans map[[2]uint64]*unitScan
	order [][2]uint64 // oldest first
}

// cachedScans bounds the units kept: destinations exporting together are
// at most a unit or two apart; one further behind scans again.
const cachedScans = 4

type unitScan struct {
	done   chan struct{}
	groups []*group // every (site, hour) of the unit; read-only once done
	of     []uint32
	err    error
}

func newScanCache() *scanCache { return &scanCache{scans: map[[2]uint64]*unitScan{}} }

// groups is scanGroups for a scheduled export, whose filter is the
// destination's claims.
func (c *scanCache) groups(ctx context.Context, log recordReader, first, last uint64, claims func(string) bool) ([]*group, []uint32, error) {
	key := [2]uint64{first, last}
	c.mu.Lock()
	sc, found := c.scans[key]
	if !found {
		sc = &unitScan{done: make(chan struct{})}
		c.scans[key] = sc
		c.order = append(c.order, key)
		if len(c.order) > cachedScans {
			delete(c.scans, c.order[0])
			c.order = c.order[1:]
		}
	}
	c.mu.Unlock()
	if !found {
		sc.groups, sc.of, sc.err = scanGroups(ctx, log, first, last, func(string, time.Time) bool { return true })
		if sc.err != nil {
			c.mu.Lock()
			if c.scans[key] == sc {
				delete(c.scans, key) // the next one scans again
			}
			c.mu.Unlock()
		}
		close(sc.done)
	} else {
		select {
		case <-sc.done:
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
	if sc.err != nil {
		if found {
			// Someone else's failure (their context, say): scan here.
			return scanGroups(ctx, log, first, last, func(site string, _ time.Time) bool { return claims(site) })
		}
		return nil, nil, sc.err
	}
	groups, of := claimedGroups(sc.groups, sc.of, claims)
	return groups, of, nil
}

// claimedGroups is what scanGroups gives with filter claims, from an
// unfiltered scan: the claimed groups in the same order, and each record's
// index among them.
func claimedGroups(all []*group, allOf []uint32, claims func(string) bool) ([]*group, []uint32) {
	remap := make([]uint32, len(all))
	var groups []*group
	for i, g := range all {
		if !claims(g.site) {
			remap[i] = noGroup
			continue
		}
		remap[i] = uint32(len(groups))
		cp := *g
		groups = append(groups, &cp)
	}
	of := make([]uint32, len(allOf))
	for i, gi := range allOf {
		if gi == noGroup {
			of[i] = noGroup
		} else {
			of[i] = remap[gi]
		}
	}
	return groups, of
}
