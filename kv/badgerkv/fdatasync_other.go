//go:build !linux

package badgerkv

import (
	"fmt"
	"os"
)

func fdatasync(f *os.File) error {
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", f.Name(), err)
	}
	return nil
}
