"""zobench: benchmarks and ablations of zeroth-order optimizers for language-model fine-tuning."""

__version__ = "0.1.0"
