package main

import (
	"context"
	"fmt"
)

const drainsReencryptUsage = `usage: drainmeter drains reencrypt

Re-seals every outlet's credentials with the first key of DRAINMETER_KEY
(after putting a new key first: DRAINMETER_KEY=NEW,OLD).
`

// reencrypt re-seals every outlet's credentials with the first key.
func (c *drainsCmd) reencrypt(ctx context.Context, args []string) error {
	if _, err := c.parse(c.flagSet("reencrypt"), drainsReencryptUsage, args, false); err != nil {
		return err
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	n, err := c.drains.Reencrypt(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "%d outlet credentials re-sealed with the first key of DRAINMETER_KEY\n", n)
	return nil
}
