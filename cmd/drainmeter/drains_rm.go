package main

import (
	"context"
	"fmt"
)

const drainsRmUsage = `usage: drainmeter drains rm ID|NAME

Removes a drain: its URL stops working within DRAIN_CACHE_TTL; minutes
already accepted are still posted.
`

// rm removes a drain.
func (c *drainsCmd) rm(ctx context.Context, args []string) error {
	target, err := c.parse(c.flagSet("rm"), drainsRmUsage, args, true)
	if err != nil {
		return err
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	d, err := c.drains.Remove(ctx, target)
	if err != nil {
		return drainErr(err, target)
	}
	fmt.Fprintf(c.stdout, "drain %s (%s) removed: its URL stops working within DRAIN_CACHE_TTL\n", d.Name, d.ID)
	return nil
}
