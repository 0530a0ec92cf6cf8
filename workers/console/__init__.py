"""The operator console, served by `voucherhook serve` under /console behind the admin token:
server-rendered pages (Starlette and Jinja2, no JavaScript framework) over the same stores and
the same replay and release as the command line."""
