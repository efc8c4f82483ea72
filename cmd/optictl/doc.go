// Command optictl is the command-line front end. Each command lives in its
// own file, parses flags into an options struct and calls a library
// function in pkg/...; nothing here is logic that a test of pkg/... could
// not reach.
//
// Exit codes: 0 success, 1 an error (bad model, failed run), 2 bad usage
// (unknown flag, wrong arguments), 3 a check failed (compare out of
// tolerance, a bench gate failed, optimize verification failed).
package main
