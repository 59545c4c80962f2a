"""Stage 5a: speed and memory benchmarks, installed as `fabulist.bench`.

    fabulist bench run --quick                  # the whole suite on a tiny random model (CI)
    fabulist bench run --model runs/f5m         # the full matrix: sizes x artifacts x threads x peers
    fabulist bench fit --budget 6GB             # which preset and context fit a device's memory

suite.py drives the matrix, worker.py measures one row in its own process, engines.py loads each engine,
models.py builds the random-weight preset models, report.py writes JSON, Markdown and plots, fit.py is
the memory fit planner. The older one-off scripts (runtime_speed.py, onnx_decode.py, train_speed.py)
still run as scripts.
"""
