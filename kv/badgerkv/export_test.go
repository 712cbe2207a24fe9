package badgerkv

// SyncedFiles returns the log files the last Sync flushed.
func (d *DB) SyncedFiles() []string {
	d.files.mu.Lock()
	defer d.files.mu.Unlock()
	var out []string
	for name := range d.files.open {
		out = append(out, name)
	}
	return out
}

// SyncWithBadger syncs with Badger's own DB.Sync, for comparison.
func (d *DB) SyncWithBadger() error { return d.db.Sync() }
