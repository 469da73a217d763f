package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"
)

const drainsListUsage = `usage: drainmeter drains list [--all]

Lists the drains and their outlets: never secrets, tokens or headers.
`

// list prints the drains as a table.
func (c *drainsCmd) list(ctx context.Context, args []string) error {
	fs := c.flagSet("list")
	all := fs.Bool("all", false, "include removed drains")
	if _, err := c.parse(fs, drainsListUsage, args, false); err != nil {
		return err
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	list, err := c.drains.List(ctx, *all)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tNAME\tOUTLETS\tPREFIX\tSOURCE PREFIX\tPROCESS TYPES\tROUTES\tCREATED\tREMOVED")
	for _, d := range list {
		removed := "-"
		if d.DisabledAt != nil {
			removed = d.DisabledAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%t\t%s\t%s\t%s\n", d.ID, d.Name, outletsDesc(d.Outlets), dash(d.Prefix),
			dash(d.SourcePrefix), d.ProcessTypes, routesDesc(d), d.CreatedAt.UTC().Format(time.RFC3339), removed)
	}
	return tw.Flush()
}
