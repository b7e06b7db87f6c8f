"""Evaluation: does synthetic data make a classifier better? (protocol, metrics, reports)."""
from .metrics import classification_metrics, mean_interval, paired_difference
from .protocol import BASE_ARMS, GENERATOR_ARMS, GeneratorSpec, Protocol, SampleVariant, evaluate
from .report import markdown_table, summarise, verdict_lines, write_report

__all__ = ["evaluate", "GeneratorSpec", "SampleVariant", "Protocol", "BASE_ARMS", "GENERATOR_ARMS",
           "classification_metrics", "mean_interval", "paired_difference", "summarise",
           "markdown_table", "verdict_lines", "write_report"]
