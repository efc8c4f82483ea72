package main

import (
	"encoding/json"
	"strings"

	"github.com/olekukonko/tablewriter"
	"github.com/spf13/cobra"

	"github.com/optictl/optictl/pkg/passes"
)

func init() { commands = append(commands, newPassesCmd) }

type passInfo struct {
	Name     string   `json:"name"`
	Level    string   `json:"level"`
	Targets  []string `json:"targets,omitempty"`
	Requires []string `json:"requires,omitempty"`
	Title    string   `json:"title"`
	File     string   `json:"file"`
}

func listPasses() []passInfo {
	var out []passInfo
	for _, p := range passes.All() {
		out = append(out, passInfo{Name: p.Name, Level: p.Level.String(), Targets: p.Targets, Requires: p.Requires, Title: p.Title(), File: p.File})
	}
	return out
}

func newPassesCmd(g *globalOptions) *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "passes",
		Short: "List every optimization pass with its level and one-line description",
		Long: `List every optimization pass in pipeline order: its name (for --passes,
--disable and --dump-after), the lowest level that runs it, the targets it is
limited to, its one-line description and the source file that defines it
(relative to the repository root).`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, args []string) error {
			list := listPasses()
			if asJSON {
				enc := json.NewEncoder(g.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(list)
			}
			t := tablewriter.NewTable(g.Stdout)
			t.Header("Pass", "Level", "Target", "Description", "File")
			for _, p := range list {
				target := "any"
				if len(p.Targets) > 0 {
					target = strings.Join(p.Targets, ",")
				}
				if err := t.Append([]string{p.Name, p.Level, target, p.Title, p.File}); err != nil {
					return err
				}
			}
			return t.Render()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the list as JSON")
	return cmd
}
