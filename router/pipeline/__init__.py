"""The request path, one module per stage, in flow order:

``classify`` (how hard: scorer, judge in its band) → ``route`` (the pure routing rule: cheapest model
that may take it within the caller's limits, and the fallback order) — together the ``plan`` →
``execute`` (call the chain until a model answers, within the deadline) → ``record`` (price the outcome
as a cost record). ``service.RouterService`` runs them for every endpoint; ``pricing`` and ``judge`` are
the pure arithmetic and prompt/parsing they use.
"""
