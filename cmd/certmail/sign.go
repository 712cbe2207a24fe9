package main

import "fmt"

// Placeholder until the owning issue lands; the file's owner replaces it.
func cmdKeygen(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdKey(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdSign(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}
