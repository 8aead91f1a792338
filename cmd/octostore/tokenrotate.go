package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

func tokenRotateCommand() *cli.Command {
	return &cli.Command{
		Name:   "rotate",
		Usage:  "replace your bearer token with a new one (the old one stops working) and print it",
		Flags:  clientFlags(),
		Action: clientAction(-1, tokenRotate),
	}
}

func tokenRotate(c *cli.Context, args []string) error {
	cl, ctx, cancel, err := clientFor(c, args, 0, 0, "token rotate")
	if err != nil {
		return err
	}
	defer cancel()
	tok, err := cl.RotateToken(ctx)
	if err != nil {
		return clientErr(err)
	}
	return printOutput(c, map[string]string{"token": tok}, func(w io.Writer) error {
		_, err := fmt.Fprintln(w, tok)
		return err
	})
}
