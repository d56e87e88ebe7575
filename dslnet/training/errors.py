"""The error a training run reports (exit 2 from the CLI): bad data, settings that
only fail against real tensors, a checkpoint that does not fit."""


class TrainError(Exception):
    pass
