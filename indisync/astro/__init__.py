"""Sky geometry with astropy, imported only where it is used (never by protocol/, config or the CLI's start)."""
