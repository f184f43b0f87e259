// Command belay-pulumi is belay's Pulumi program (Pulumi.yaml, runtime go): it
// reads the stack's belay:* configuration and provisions both sites. Everything
// is in package components; this file only wires the config in.
package main

import (
	"github.com/pulumi/pulumi/sdk/v3/go/pulumi"

	"github.com/belay-sh/belay/components"
	"github.com/belay-sh/belay/config"
)

func main() {
	pulumi.Run(func(ctx *pulumi.Context) error {
		// ParsePulumiEnv reads every belay:* key the engine passes (unknown keys
		// are refused, so ctx's per-key lookup is not enough) and refuses
		// secret-only keys stored in plain text.
		cfg, err := config.ParsePulumiEnv()
		if err != nil {
			return err
		}
		_, err = components.NewBelay(ctx, ctx.Stack(), cfg)
		return err
	})
}
