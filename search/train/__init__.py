"""The training harness every method reuses: datasets over ``app.data.case.Case`` lists, losses,
a resumable train loop, and evaluation on held-out patients with ``app.metrics``.

Also what the cine methods (msnas-hw, rtdnas) share: ``cine_config`` (their config types),
``clips`` (phantom patients, the split by patient, clip datasets, the clip-probability interface and
its ONNX predictor), ``row_networks`` (U-nets and searched fused nets from a row spec),
``bilevel`` (the first-order bilevel search) and ``cine_rows`` (retraining and evaluating rows in a
run folder); and ``stages``, the stage harness of a method run (resumable, skip-if-done with a
record of why, the latency-table stage, one timer)."""
