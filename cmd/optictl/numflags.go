package main

import (
	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/numerics"
)

// The flags every command that builds inputs shares: --shape (one syntax,
// numerics.ParseShapeFlags) and --max-memory (numerics.ParseBytes).

const shapeFlagUsage = "fix an input's dynamic dims: name=1x3x48x320 (name=scalar for rank 0); repeatable, a name at most once"

// parseShapeFlags reads --shape values; a bad value is a usage error.
func parseShapeFlags(specs []string) (map[string][]int64, error) {
	if len(specs) == 0 {
		return nil, nil
	}
	shapes, err := numerics.ParseShapeFlags(specs)
	if err != nil {
		return nil, usageErr("%v", err)
	}
	return shapes, nil
}

// addMaxMemoryFlag registers --max-memory on cmd.
func addMaxMemoryFlag(cmd *cobra.Command, p *string) {
	cmd.Flags().StringVar(p, "max-memory", "", "bound on memory in bytes (suffixes K, M, G; 0 = no bound): seeded inputs larger than this are refused naming the input and shape (default 2G), and interp sessions may not plan more (default: no bound)")
}

// memoryBound is a parsed --max-memory.
type memoryBound struct {
	// session bounds a session's planned memory (0: none), as given.
	session int64
	// seeded bounds one set of seeded inputs (numerics.SeedOptions.MaxBytes:
	// negative for none).
	seeded int64
}

// parseMaxMemory reads --max-memory; a bad value is a usage error.
func parseMaxMemory(s string) (memoryBound, error) {
	v, err := numerics.ParseBytes(s, -1)
	if err != nil {
		return memoryBound{}, usageErr("--max-memory: %v", err)
	}
	switch {
	case v < 0: // not given
		return memoryBound{seeded: numerics.DefaultMaxMemory}, nil
	case v == 0:
		return memoryBound{seeded: -1}, nil
	}
	return memoryBound{session: v, seeded: v}, nil
}
