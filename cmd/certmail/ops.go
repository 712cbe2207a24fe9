package main

import "fmt"

// Placeholder until the owning issue lands; the file's owner replaces it.
func cmdTLS(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdBackup(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdRestore(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}
