"""Every way in: HTTP API, web pages and the command line."""
