"""`interview`: the command line that starts, migrates and operates the platform."""
