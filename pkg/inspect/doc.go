// Package inspect builds the report that `optictl inspect` prints: what a
// model is (producer, IR version, opsets, inputs and outputs with symbolic
// shapes), what it is made of (op histogram, node and initializer counts,
// custom-domain ops) and what it costs (parameters, FLOPs, the heaviest
// nodes, peak activation memory), as tables or as one JSON object.
//
// Build never changes the model it is given: it works on a clone, applies
// the --shape overrides there and runs shape inference and the cost model
// from pkg/graph.
package inspect
