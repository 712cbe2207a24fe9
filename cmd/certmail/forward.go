package main

import "fmt"

// Placeholder until the owning issue lands; the file's owner replaces it.
func cmdPolicy(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdForward(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdShow(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}

func cmdUnread(args []string, e *env) int {
	fmt.Fprintln(e.stderr, "certmail: this command is not built yet")
	return exitFailure
}
