"""Development tools that use the stand-ins: the benchmark (``bench``) and the demo (``demo``).

They start ``big_chat`` and ``our_api`` and run the worker against them, so they live outside
the runtime package: the worker (``integration``) never imports this package, except the CLI
doing so lazily, inside the function that runs ``bench`` or ``demo``.
"""
