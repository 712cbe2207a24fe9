//go:build !unix

package main

// privateFiles: no umask here; the data directory's ACLs decide.
func privateFiles() {}
