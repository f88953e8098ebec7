"""What the stand-ins (``big_chat``, ``our_api``, ``intempus``, ``case_store``, ``crm_providers``)
share, one copy each, so a fix in one stand-in's plumbing reaches all of them:

- ``serving``: ``python -m``'s bind, ready line, busy-port line and exit status (all five);
- ``cli``: the ``--host/--port/--db`` and fault flags with their help texts;
- ``faults``: the fault rates, the fault log and the seeded draws;
- ``stats`` and ``middleware``: request counts by route template, and the middleware that
  counts contract requests;
- ``docs``: ``/openapi.json`` and the ``/docs`` page;
- ``hooks`` and ``service``: the kill-after hook and the service object's common core;
- ``sqlite``: opening a stand-in's database.

Only what is really the same lives here; a stand-in's own contract (routes, error shapes, its
own faults) stays in its package. Never imported by ``integration``: the worker must not share
code with what it is tested against.
"""
