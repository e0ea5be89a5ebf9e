"""The training harness every method reuses: datasets over ``app.data.case.Case`` lists, losses,
a resumable train loop, and evaluation on held-out patients with ``app.metrics``."""
