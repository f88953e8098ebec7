"""BigChat stand-in: serves BigChat's contract from a deterministic simulated world.

Modules: ``settings`` (what can be configured), ``models`` (the contract's shapes), ``world``
(the pure simulation), ``scripted`` (a world written down event by event, for exact tests),
``view`` (what the server asks of either world), ``truth`` (what OurAPI must hold, derived from
the full history), ``faults`` (serving faults and their log), ``stats`` (request counts),
``durations`` (``90s``, ``1h30m``... for command lines), ``app`` (``create_app``), ``__main__``
(``python -m big_chat``).
"""
