package main

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/drainmeter/drainmeter/outlet"
)

const drainsSetUsage = `usage: drainmeter drains set ID|NAME [--name N] [outlet flags] [--remove-outlet KIND] [--prefix P] [--source-prefix S] [--process-types=BOOL] [route flags]

Changes a drain's options and outlets; new credentials take effect on every
dyno at once (route options within DRAIN_CACHE_TTL).

` + outletFlagsHelp + routeFlagsHelp

// set changes a drain's options and outlets.
func (c *drainsCmd) set(ctx context.Context, args []string) error {
	fs := c.flagSet("set")
	var f drainFlags
	f.register(fs)
	var remove, rmAttrs optList
	fs.Var(&remove, "remove-outlet", "remove the drain's otlp, remotewrite or librato outlet (repeatable)")
	fs.Var(&rmAttrs, "remove-attribute", "remove the drain's attribute K (repeatable)")
	target, err := c.parse(fs, drainsSetUsage, args, true)
	if err != nil {
		return err
	}
	if err := c.env.requireDB(); err != nil {
		return err
	}
	spec, err := f.spec(&secretReader{stdin: c.stdin, getenv: c.env.getenv}, c.stderr, false)
	if err != nil {
		return err
	}
	spec.RemoveAttributes = rmAttrs.v
	for _, k := range remove.v {
		spec.Remove = append(spec.Remove, outlet.Kind(strings.ToLower(k)))
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	if !f.name.set && len(spec.Outlets) == 0 && len(spec.Remove) == 0 && !f.prefix.set && !f.sourcePrefix.set && !f.processTypes.set &&
		!f.routes.set && !f.routeMetrics.set && !f.attrs.set && !rmAttrs.set {
		return errors.New("drains set: nothing to change (see drainmeter drains set --help)")
	}
	d, err := c.drains.Set(ctx, target, spec)
	if err != nil {
		return drainErr(err, target)
	}
	fmt.Fprintf(c.stdout, "drain %s (%s) updated; outlets: %s; routes: %s; attributes: %s\n",
		d.Name, d.ID, outletsDesc(d.Outlets), routesDesc(d), attributesDesc(d.Attributes))
	return nil
}
