"""``pyperunner ui``: a local web app to browse, compare and watch runs (see :mod:`.server`).

Importing :mod:`pyperunner` never imports this package's server stack (Starlette, uvicorn): the
``ui`` command imports it when it runs.
"""
