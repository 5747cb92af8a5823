package destination

// Fence is consulted before every write to the destination: with a lease
// (syncer/lease.go) only the instance holding it may write. The
// transaction guard built on it is package apply's (apply/fence.go).
type Fence interface {
	// Epoch returns the lease epoch writes carry, or an error (wrapping
	// apply.ErrFenced) when the lease is not certainly held now.
	Epoch() (int64, error)
	// Restore returns the commands that put the lease's own keys on
	// shard 0 back: they run in the same transaction as any FLUSHALL
	// there (a flush before a full sync, or one replicated from a
	// source), so the lease never vanishes while it is held.
	Restore() [][]string
}

// SetFence makes every later write check f first. Call it before any
// write; nil (the default) writes unconditionally.
func (d *Destination) SetFence(f Fence) {
	d.mu.Lock()
	d.fence = f
	d.mu.Unlock()
}

// Fence returns the fence SetFence set, nil when none.
func (d *Destination) Fence() Fence {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fence
}

// FenceEpoch returns the epoch to guard transactions with (0: no fence),
// or the fence's error when this instance must not write.
func (d *Destination) FenceEpoch() (int64, error) {
	f := d.Fence()
	if f == nil {
		return 0, nil
	}
	return f.Epoch()
}
