// Package interp is optictl's pure-Go executor: the reference backend used
// to verify rewrites, and the no-cgo backend for edge deployments. It builds
// with CGO_ENABLED=0.
//
// Open compiles a graph once into a Program: every value gets a slot, every
// node a Kernel prepared from its attributes (and constant inputs, such as
// weights that can be pre-packed). Run then walks the steps with no map
// lookups and no attribute parsing. Each step owns its output buffers and
// reuses them from run to run (Call.Out resizes in place), so a warmed-up
// session does not allocate on the hot path for models with fixed shapes.
//
// Kernels register with Register(domain, op, Builder). A Builder runs once
// per node at Open; the Kernel it returns runs once per node per Run.
// Values are immutable within a run: a kernel may alias an input's bytes as
// its output (Reshape, Identity) but never writes to its inputs.
package interp
