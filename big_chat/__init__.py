"""BigChat stand-in: serves BigChat's contract from a deterministic simulated world.

Modules: ``settings`` (what can be configured), ``models`` (the contract's shapes), ``world``
(the pure simulation, ground truth), ``faults`` (serving faults and their log), ``stats``
(request counts), ``app`` (``create_app``), ``__main__`` (``python -m big_chat``).
"""
