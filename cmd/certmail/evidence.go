package main

import "fmt"

// Placeholder until the owning issue lands; the file's owner replaces it.
func cmdToken(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdEvidence(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdVerify(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}
