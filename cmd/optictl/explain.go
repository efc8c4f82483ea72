package main

import (
	"fmt"
	"io"
	"slices"

	"github.com/optictl/optictl/pkg/passes"
)

// checkExplain refuses --explain for a pass the options do not run (the
// pass would have nothing to say).
func checkExplain(po passes.Options, run []*passes.Pass) error {
	for _, name := range po.Explain {
		if !slices.ContainsFunc(run, func(p *passes.Pass) bool { return p.Name == name }) {
			target := po.Target
			if target == "" {
				target = passes.TargetGeneric
			}
			return usageErr("--explain %s: the pass does not run at -%s --target %s (name it in --passes to run it)", name, po.Level, target)
		}
	}
	return nil
}

// printExplain prints, for each explained pass, the candidates its last
// run did not rewrite and why.
func printExplain(w io.Writer, rep *passes.Report, explain []string) {
	for _, name := range explain {
		var st *passes.PassStat
		for _, s := range rep.Passes {
			if s.Pass == name {
				st = s
			}
		}
		if st == nil {
			continue
		}
		fmt.Fprintf(w, "explain %s: %d candidate(s) not rewritten in its last run (rewrote %d time(s) over %d run(s))\n", name, len(st.Misses), st.Changed, st.Runs)
		for _, n := range st.Notes {
			fmt.Fprintf(w, "  note: %s\n", n)
		}
		for _, m := range st.Misses {
			fmt.Fprintf(w, "  %s\n", m)
		}
	}
}
