package main

// Every runtime backend is linked in here, and only here; commands find
// them through runtime.Get and runtime.Capabilities.
import _ "github.com/optictl/optictl/pkg/runtime/backends"
