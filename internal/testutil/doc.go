// Package testutil finds the shared real models and conformance data for
// tests, and enforces the house rule: under CI=true a missing dependency is
// a failure, never a skip.
package testutil
