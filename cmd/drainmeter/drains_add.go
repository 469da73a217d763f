package main

import (
	"context"
	"fmt"

	"github.com/drainmeter/drainmeter/parse"
)

const drainsAddUsage = `usage: drainmeter drains add --name NAME [outlet flags] [--prefix P] [--source-prefix S] [--process-types=false] [route flags] [--url URL]

Creates a drain and prints its URL (its secret is shown only this once) and
the heroku drains:add line to run.

` + outletFlagsHelp + routeFlagsHelp

// add creates a drain and prints its URL.
func (c *drainsCmd) add(ctx context.Context, args []string) error {
	fs := c.flagSet("add")
	var f drainFlags
	f.register(fs)
	var baseURL optString
	fs.Var(&baseURL, "url", "this app's URL, e.g. https://my-drainmeter-1a2b3c4d5e6f.herokuapp.com (default $DRAINMETER_URL)")
	if _, err := c.parse(fs, drainsAddUsage, args, false); err != nil {
		return err
	}
	if err := c.env.requireDB(); err != nil { // before asking for --url: without it nothing works
		return err
	}
	base, err := drainBaseURL(baseURL, c.env.getenv)
	if err != nil {
		return err
	}
	spec, err := f.spec(&secretReader{stdin: c.stdin, getenv: c.env.getenv}, c.stderr, true)
	if err != nil {
		return err
	}
	if err := c.open(ctx); err != nil {
		return err
	}
	d, secret, err := c.drains.Add(ctx, spec)
	if err != nil {
		return drainErr(err, f.name.v)
	}
	u := drainURL(base, d.ID, secret)
	fmt.Fprintf(c.stdout, "drain %s (%s) created.\n\n", d.Name, d.ID)
	fmt.Fprintf(c.stdout, "drain URL (its secret is shown only this once):\n  %s\n\n", u)
	fmt.Fprintf(c.stdout, "add it to the app:\n  heroku drains:add '%s' -a %s\n", u, d.Name)
	fmt.Fprintf(c.stdout, "\noutlets: %s\n", outletsDesc(d.Outlets))
	if d.RouteMetrics != parse.RoutesOff {
		fmt.Fprintf(c.stdout, "routes: %s\n", routesDesc(d))
	}
	if len(d.Attributes) > 0 {
		fmt.Fprintf(c.stdout, "attributes: %s\n", attributesDesc(d.Attributes))
	}
	return nil
}
