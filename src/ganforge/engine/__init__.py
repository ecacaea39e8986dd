"""The training engine: the loop, checkpoints, logging and data parallelism.

It knows families only through `ganforge.models.base.GANModel`."""
