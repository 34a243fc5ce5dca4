"""One module per capability, each with `register(subparsers)`; listed in aistack_client.cli.COMMANDS."""
