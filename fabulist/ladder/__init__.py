"""The size ladder: train a ladder of shapes on the same data and token budget per size, export and
measure each rung, and find the range of model sizes that write fables well and fit a device.

    fabulist ladder run default --data split/train.parquet --valid split/valid.parquet --out runs/ladder
"""
